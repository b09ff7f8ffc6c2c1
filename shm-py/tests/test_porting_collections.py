"""The porting examples of ../shared/porting-examples.md that use dicts, lists,
Namespace, Queue and the managers (#3, #6, #8, #10, #15, #16, #17, #20), with their
`multiprocessing` imports swapped for `shm`, printing what the material says (or what
CPython prints where the two differ). Each runs as a script in its own interpreter."""

import re
import subprocess
import sys
import textwrap

import pytest

from _leaks import no_leaks  # noqa: F401 (autouse fixture)


def run(tmp_path, code, method=None):
    script = tmp_path / "example.py"
    src = textwrap.dedent(code)
    if method:
        src = (
            "import multiprocessing as _mp\n"
            f"if __name__ == '__main__':\n    _mp.set_start_method({method!r})\n" + src
        )
    script.write_text(src)
    out = subprocess.run(
        [sys.executable, str(script)], capture_output=True, text=True, timeout=120, cwd=tmp_path
    )
    assert out.returncode == 0, out.stderr
    return out.stdout.splitlines()


EXAMPLE_3 = """
import multiprocessing
import shm as shared_memory  # was: from multiprocessing import shared_memory


def modify_shared_dict(shm_name):
    existing_shm = shared_memory.ShareableDict(name=shm_name)
    existing_shm['key1'] = 'value1'
    print("Child Process Modified Data:", existing_shm)


def main():
    shared_dict = shared_memory.ShareableDict({'key': 'initial_value'})
    print("Initial Data in Parent Process:", shared_dict)
    p = multiprocessing.Process(target=modify_shared_dict, args=(shared_dict.name,))
    p.start()
    p.join()
    print("Data in Parent Process After Child Modification:", shared_dict)
    shared_dict.shm.close()
    shared_dict.shm.unlink()


if __name__ == "__main__":
    main()
"""


@pytest.mark.parametrize("method", ["fork", "spawn", "forkserver"])
def test_example_3_shareable_dict(tmp_path, method):
    assert run(tmp_path, EXAMPLE_3, method) == [
        "Initial Data in Parent Process: {'key': 'initial_value'}",
        "Child Process Modified Data: {'key': 'initial_value', 'key1': 'value1'}",
        "Data in Parent Process After Child Modification: {'key': 'initial_value', 'key1': 'value1'}",
    ]


def test_example_6_manager_dict(tmp_path):
    out = run(
        tmp_path,
        """
        import shm as multiprocessing  # was: import multiprocessing


        def func(d):
            d[1] = 'a'
            print(d)


        if __name__ == '__main__':
            manager = multiprocessing.Manager()
            dict_shared = manager.dict()
            dict_shared[0] = 'b'
            process1 = multiprocessing.Process(target=func, args=(dict_shared,))
            process2 = multiprocessing.Process(target=func, args=(dict_shared,))
            process1.start()
            process2.start()
            process1.join()
            process2.join()
        """,
    )
    # Two processes print to one pipe (lines may interleave mid-line, as with CPython).
    assert "".join(out) == "{0: 'b', 1: 'a'}" * 2, out


def test_example_8_queue_maxsize(tmp_path):
    out = run(
        tmp_path,
        """
        import shm as multiprocessing  # was: import multiprocessing
        import random


        def producer(numbers, q):
            for x in numbers:
                if x % 2 == 0:
                    if q.full():
                        print("queue is full")
                        break
                    q.put(x)
                    print(f"put {x} in queue by producer")
            return None


        def consumer(q):
            while not q.empty():
                print(f"take data {q.get()} from queue by consumer")
            return None


        if __name__ == "__main__":
            qu = multiprocessing.Queue(maxsize=5,)
            p5 = multiprocessing.Process(
                name="producer-1",
                target=producer,
                args=([random.randint(1, 100) for i in range(0, 10)], qu)
            )
            p5.start()
            p5.join()
            p6 = multiprocessing.Process(
                name="consumer-1",
                target=consumer,
                args=(qu,)
            )
            p6.start()
            p6.join()
            print(qu.qsize())
        """,
    )
    puts = [int(m.group(1)) for line in out if (m := re.fullmatch(r"put (\d+) in queue by producer", line))]
    takes = [int(m.group(1)) for line in out if (m := re.fullmatch(r"take data (\d+) from queue by consumer", line))]
    assert len(puts) <= 5 and all(x % 2 == 0 for x in puts)
    assert takes == puts and out[-1] == "0"
    assert len(out) == len(puts) + len(takes) + 1 + ("queue is full" in out)


def test_example_10_event_and_queue(tmp_path):
    out = run(
        tmp_path,
        """
        import shm as multiprocessing  # was: import multiprocessing
        import time
        import random


        def joo_a(q, ev):
            print("subprocess joo_a start", flush=True)
            if not ev.is_set():
                ev.wait()
            q.put(random.randint(1, 100))
            print("subprocess joo_a ended", flush=True)


        def joo_b(q, ev):
            print("subprocess joo_b start", flush=True)
            ev.clear()
            time.sleep(2)
            q.put(random.randint(200, 300))
            ev.set()
            print("subprocess joo_b ended", flush=True)


        def main_event():
            qu = multiprocessing.Queue()
            ev = multiprocessing.Event()
            sub_a = multiprocessing.Process(target=joo_a, args=(qu, ev))
            sub_b = multiprocessing.Process(target=joo_b, args=(qu, ev,))
            sub_a.start()
            sub_b.start()
            sub_a.join()
            sub_b.join()
            while not qu.empty():
                print(qu.get())


        if __name__ == "__main__":
            main_event()
        """,
    )
    # Two processes print to one pipe: their lines may interleave mid-line (as with
    # CPython), so check each phrase once and the two numbers the parent prints last.
    text = "".join(out[:-2])
    for phrase in ("joo_a start", "joo_b start", "joo_b ended", "joo_a ended"):
        assert text.count("subprocess " + phrase) == 1, out
    assert 200 <= int(out[-2]) <= 300 and 1 <= int(out[-1]) <= 100, out


def test_example_15_manager_steps(tmp_path):
    out = run(
        tmp_path,
        """
        from shm import Manager  # was: from multiprocessing import Manager
        from shm import SharedMemoryManager  # was: from multiprocessing.managers import ...

        if __name__ == "__main__":
            snm = Manager()
            smm = SharedMemoryManager()
            smm.start()
            sl, sd = snm.list(), snm.dict()
            size = 16
            sx = smm.SharedMemory(size)
            sl = smm.ShareableList(['howdy', b'HoWdY', -273.154, 100, True])
            q = snm.Queue()
            smm.shutdown()
            snm.shutdown()
        """,
    )
    assert out == []


def test_example_16_manager_dict_and_list(tmp_path):
    out = run(
        tmp_path,
        """
        from shm import Process, Manager  # was: from multiprocessing import Process, Manager


        def f(d, l):
            d[1] = '1'
            d['2'] = 2
            d[0.25] = None
            l.reverse()


        if __name__ == '__main__':
            with Manager() as manager:
                d = manager.dict()
                l = manager.list(range(10))
                p = Process(target=f, args=(d, l))
                p.start()
                p.join()
                print(d)
                print(l)
        """,
    )
    # The document's order (CPython prints insertion order; the shared dict prints keys
    # in order: numbers by value, then strings).
    assert out == ["{0.25: None, 1: '1', '2': 2}", "[9, 8, 7, 6, 5, 4, 3, 2, 1, 0]"]


def test_example_17_shareable_list_in_two_processes(tmp_path):
    out = run(
        tmp_path,
        """
        from shm import Process  # was: from multiprocessing import Process
        from shm import SharedMemoryManager  # was: from multiprocessing.managers import ...


        def do_work(sl, start, stop):
            for i in range(start, stop):
                sl[i] = sl[i] * 2


        if __name__ == "__main__":
            with SharedMemoryManager() as smm:
                sl = smm.ShareableList(range(2000))
                p1 = Process(target=do_work, args=(sl, 0, 1000))
                p2 = Process(target=do_work, args=(sl, 1000, 2000))
                p1.start()
                p2.start()
                p1.join()
                p2.join()
                total_result = sum(sl)
                print(total_result)
        """,
    )
    assert out == ["3998000"]


def test_example_20_manager_list_never_started(tmp_path):
    out = run(
        tmp_path,
        """
        from shm import Process, Manager  # was: from multiprocessing import Process, Manager
        import time
        import random


        def kkk(a_list, number):
            for i in range(10):
                print('This is a process{} {}'.format(number, a_list))
            print('This is a process{} {}'.format(number, a_list))


        def jjj(a_list):
            for i in range(2):
                process = Process(target=kkk, args=(a_list, i))


        if __name__ == '__main__':
            manager = Manager()
            a_list = manager.list()
            process_0 = Process(target=jjj, args=(a_list,))
            print('it\\'s ok')
        """,
    )
    assert out == ["it's ok"]
