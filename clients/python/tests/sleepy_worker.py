"""A Python worker run as its own process by the tests, so it can be signalled.

usage: sleepy_worker.py ENDPOINT SERVICE NAME

Each task sleeps PAYLOAD seconds (waking early if cancelled) and answers
"NAME attempt N". ``Worker.run`` handles SIGTERM on the main thread.
"""

import sys

import yard


def main() -> None:
    endpoint, service, name = sys.argv[1:4]
    worker = yard.Worker(endpoint, name=name, capacity=2)

    @worker.handler(service)
    def sleep(job: yard.Job) -> str:
        print(f"started {job.id}", flush=True)
        job.wait_cancelled(float(job.payload))
        return f"{name} attempt {job.attempt}"

    worker.run()
    print("stopped", flush=True)


if __name__ == "__main__":
    main()
