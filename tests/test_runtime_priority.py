"""System 1's tick under SCHED_FIFO where Linux permits it, normal scheduling outside it."""

import os

import pytest

from hume.runtime.priority import RealtimeSection

pytestmark = pytest.mark.skipif(not hasattr(os, "sched_setscheduler"), reason="Linux scheduling only")


def test_realtime_section_switches_the_calling_thread_in_and_out():
    section = RealtimeSection(10)
    try:
        if not section.enabled:  # not permitted here (no CAP_SYS_NICE, no RLIMIT_RTPRIO)
            assert os.sched_getscheduler(0) == os.SCHED_OTHER
            pytest.skip("real-time scheduling is not permitted for this user")
        assert os.sched_getscheduler(0) == os.SCHED_OTHER  # idle between ticks
        section.enter()
        assert os.sched_getscheduler(0) == os.SCHED_FIFO and os.sched_getparam(0).sched_priority == 10
    finally:
        section.leave()
    assert os.sched_getscheduler(0) == os.SCHED_OTHER


def test_priority_zero_changes_nothing():
    section = RealtimeSection(0)
    section.enter()
    assert not section.enabled and os.sched_getscheduler(0) == os.SCHED_OTHER
