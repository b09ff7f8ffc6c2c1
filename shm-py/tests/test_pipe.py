import os
import signal
import threading
import time

import pytest

import shm


def test_send_recv_both_ways_and_poll():
    a, b = shm.Pipe()
    assert not a.poll()
    a.send((1, "x", None))
    assert b.poll(5)
    assert b.recv() == (1, "x", None)
    b.send_bytes(b"abcdef", 1, 3)
    assert a.recv_bytes() == b"bcd"


def test_one_way_pipe_has_a_reading_and_a_writing_end():
    r, w = shm.Pipe(duplex=False)
    assert r.readable and not r.writable and w.writable and not w.readable
    w.send(5)
    assert r.recv() == 5
    with pytest.raises(OSError):
        r.send(1)


def test_recv_after_the_other_end_closed_is_eof_once_drained():
    a, b = shm.Pipe()
    a.send("last")
    a.close()
    assert b.recv() == "last"
    with pytest.raises(EOFError):
        b.recv()


def test_using_a_closed_connection_is_a_value_error_and_an_os_error():
    a, b = shm.Pipe()
    a.close()
    assert a.closed
    for call in (lambda: a.send(1), lambda: a.recv(), lambda: a.poll(), lambda: a.send_bytes(b"x"), lambda: a.recv_bytes()):
        with pytest.raises(ValueError):
            call()
        with pytest.raises(OSError):
            call()
    a.close()  # idempotent


def test_poll_waits_up_to_its_timeout():
    a, b = shm.Pipe()
    t = time.monotonic()
    assert not b.poll(0.3)
    assert time.monotonic() - t >= 0.25
    threading.Timer(0.2, lambda: a.send(1)).start()
    assert b.poll(30)


def test_a_large_message_round_trips():
    a, b = shm.Pipe()
    data = os.urandom(40_000)
    a.send_bytes(data)
    assert b.recv_bytes() == data
    with pytest.raises(OSError):
        a.send_bytes(data)
        b.recv_bytes(maxlength=10)
