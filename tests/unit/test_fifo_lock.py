"""The embedders' lock hands the model over in the order it was asked for: the document jobs of
two collections take turns batch by batch instead of one keeping it to its end."""

from __future__ import annotations

import threading
import time

from rag_service.embedders.base import FifoLock


def test_waiters_get_the_lock_in_the_order_they_asked() -> None:
    lock = FifoLock()
    order: list[str] = []
    lock.__enter__()  # held while the others line up

    def take(name: str) -> None:
        with lock:
            order.append(name)

    threads = []
    for name in "abcd":
        thread = threading.Thread(target=take, args=(name,))
        thread.start()
        threads.append(thread)
        while lock._next_ticket < len(threads) + 1:  # this one has its ticket: the next may ask
            time.sleep(0.001)
    lock.__exit__()
    for thread in threads:
        thread.join()
    assert order == list("abcd")


def test_a_thread_that_releases_and_asks_again_goes_behind_the_waiting_one() -> None:
    lock = FifoLock()
    turns: list[str] = []
    lock.__enter__()

    def other_turn() -> None:
        with lock:
            turns.append("other")

    other = threading.Thread(target=other_turn)
    other.start()
    while lock._next_ticket < 2:
        time.sleep(0.001)
    lock.__exit__()
    with lock:  # asks again at once, as a job's next batch does
        turns.append("same")
    other.join()
    assert turns == ["other", "same"]
