"""The one backoff of Graph and LDAP retries: jitter, a cap, a count and a time budget."""

from domain_sync.backoff import Backoff


class Fixed:
    def __init__(self, value):
        self.value = value

    def random(self):
        return self.value


class Clock:
    def __init__(self):
        self.now = 0.0

    def __call__(self):
        return self.now


def test_delays_double_with_jitter_and_are_capped():
    backoff = Backoff(budget_seconds=1e9, rng=Fixed(1.0), cap_seconds=60.0)
    assert [backoff.delay(n) for n in (1, 2, 3)] == [0.5, 1.0, 2.0]
    assert Backoff(1e9, rng=Fixed(0.0)).delay(1) == 0.25
    assert backoff.delay(30) == 60.0


def test_the_count_of_attempts_ends_the_retries():
    backoff = Backoff(budget_seconds=1e9, max_attempts=3, rng=Fixed(1.0))
    assert backoff.next_delay() == 0.5
    assert backoff.next_delay() == 1.0
    assert backoff.next_delay() is None
    assert backoff.retries == 2
    assert "3 attempts" in backoff.exhausted()


def test_the_time_budget_ends_the_retries_and_counts_from_the_last_progress():
    clock = Clock()
    backoff = Backoff(budget_seconds=10, max_attempts=100, clock=clock, rng=Fixed(1.0))
    clock.now = 9.0
    assert backoff.next_delay() == 0.5
    assert backoff.next_delay(asked=5.0) is None  # 9 s waited + 5 s asked > 10 s
    backoff.progress()
    assert backoff.next_delay(asked=5.0) == 5.0


def test_a_wait_the_service_asked_for_replaces_the_exponential_delay():
    backoff = Backoff(budget_seconds=100, rng=Fixed(1.0))
    assert backoff.next_delay(asked=7.0) == 7.0
