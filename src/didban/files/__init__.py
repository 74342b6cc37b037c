"""Measurement files and the processes that read them: generic, below every package that
judges or stores what the files hold (it imports only ``didban.model``).

* ``kinds``: which files are measurement files, walking directories;
* ``streams``: opening plain, gzip and Zstandard files, noticing truncation;
* ``reader``: the records of a file, each with its FILE:LINE;
* ``tasks``: cutting files into tasks for worker processes (byte ranges, blocks of lines);
* ``pool``: a function applied to every record, in this process or in worker processes,
  results in input order;
* ``cpus``: how many CPUs this process may use (affinity, cgroup quotas);
* ``durable``: what makes a write survive a crash (fsync of a directory).

Import the submodule you need: this file imports none of them, so a command that only
needs ``durable`` does not load the process pool.
"""
