"""``didban ooni sync``: mirror one country's slice of OONI's bucket into a directory.

Steps: list every prefix of the selection (``selection.py``; a few listings at a time),
keep the keys of the wanted country and tests, then for each object either trust the
manifest (same ETag and size listed, local file untouched), hash a local file the
manifest does not vouch for, or download it (a few at a time, resuming a partial file of
the same ETag). A download is written to ``.<name>.<etag hash>.part`` beside its final
name, fsynced, verified (``verify.py``), renamed, and only then written to the manifest
(``manifest.py``). A file that fails verification is fetched once more, then reported as
failed. Cans are downloaded into ``.didban-sync/cans/``, verified the same way, the
country's reports extracted (``cans.py``), and the can deleted unless ``keep_cans``.

Nothing is written to the destination before every listing has succeeded: a bad bucket,
an unreachable endpoint or a refused listing stops the sync with one sentence.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

from didban.store.oonisync import cans, verify
from didban.store.oonisync.manifest import Entry, Manifest, stamp
from didban.store.oonisync.s3 import AnonymousS3, S3Error, S3Object
from didban.store.oonisync.selection import (
    BUCKET,
    BUCKET_REGION,
    CAN_KEY,
    JSONL_KEY,
    LEGACY_BUCKET,
    LEGACY_BUCKET_REGION,
    RAW_KEY,
    REPORT_KEY,
    Prefix,
    Selection,
    can_prefixes,
    compact,
    jsonl_prefixes,
    needs_old_layouts,
    raw_prefixes,
)

T = TypeVar("T")


@dataclass(frozen=True)
class Options:
    selection: Selection
    dest: Path
    endpoint_url: str | None = None
    bucket: str = BUCKET
    legacy_bucket: str = LEGACY_BUCKET
    cans: bool = False  # days up to 2020-10-21 from the tar.lz4 cans, not jsonl/
    jobs: int = 4
    retries: int = 5
    backoff: float = 0.5
    verify_all: bool = False
    keep_cans: bool = False
    dry_run: bool = False  # list and report; write nothing


@dataclass(frozen=True)
class Item:
    """One listed object of the selection and the local file it becomes."""

    bucket: str
    obj: S3Object
    layout: str  # "raw", "jsonl" (the object itself), "can", "report" (extracted)
    local: Path  # relative to dest

    @property
    def extracted(self) -> bool:
        return self.layout in ("can", "report")


@dataclass
class Report:
    listed: int = 0
    listed_bytes: int = 0
    already: int = 0  # verified before: manifest line, same ETag, file untouched
    rechecked: int = 0  # present without a trusted manifest line: hashed and kept
    downloaded: int = 0
    downloaded_bytes: int = 0
    resumed: int = 0  # downloads that continued a partial file
    refetched: int = 0  # local or downloaded files that failed verification
    retries: int = 0  # transient network failures overcome
    by_md5: int = 0
    by_multipart_md5: int = 0
    by_size_only: int = 0
    cans: int = 0
    extracted_measurements: int = 0
    yaml_skipped: int = 0
    failed: list[str] = field(default_factory=list)
    files: list[Path] = field(default_factory=list)  # the selection's local files

    def count_check(self, how: str) -> None:
        if how == "md5":
            self.by_md5 += 1
        elif how == "multipart md5":
            self.by_multipart_md5 += 1
        else:
            self.by_size_only += 1


class Hooks:
    """Progress callbacks (the CLI draws a rich progress bar with them)."""

    def listing(self, done: int, total: int) -> None: ...
    def planned(self, files: int, nbytes: int) -> None: ...
    def advance(self, nbytes: int) -> None: ...
    def finished(self, item: Item, outcome: str) -> None: ...


def _item(sel: Selection, bucket: str, layout: str, obj: S3Object) -> Item | None:
    """The object as an item of the selection, or None when its key is outside the layout
    or the selection (a postcan ``.tar.gz``, another test, another country)."""
    key = obj.key
    if layout == "raw":
        if (m := RAW_KEY.match(key)) and m[3] == sel.cc and sel.wants(m[4]):
            return Item(bucket, obj, "raw", Path(key))
        return None
    if layout == "jsonl":
        if (m := JSONL_KEY.match(key)) and m[2] == sel.cc and sel.wants(m[1]):
            return Item(bucket, obj, "jsonl", Path(key))
        return None
    name = key.rsplit("/", 1)[-1]
    if m := CAN_KEY.match(key):
        if not sel.wants(m[2]):
            return None
        out = f"canned/{m[1]}/{sel.cc}/{compact(m[2])}/{name[: -len('.tar.lz4')]}.jsonl.gz"
        return Item(bucket, obj, "can", Path(out))
    if (m := REPORT_KEY.match(key)) and m[2] == sel.cc and sel.wants(m[3]):
        out = f"canned/{m[1]}/{sel.cc}/{compact(m[3])}/{name[: -len('.json.lz4')]}.jsonl.gz"
        return Item(bucket, obj, "report", Path(out))
    return None


async def _each(items: Sequence[T], workers: int, fn: Callable[[T], Awaitable[None]]) -> None:
    """``fn`` on every item, ``workers`` at a time: a fixed pool of coroutines taking from
    one iterator (not a task per item: a year's sync lists 10⁵ files). The first error
    cancels the others and is raised as itself."""
    pending = iter(items)

    async def worker() -> None:
        for item in pending:
            await fn(item)

    try:
        async with asyncio.TaskGroup() as group:
            for _ in range(max(1, min(workers, len(items)))):
                group.create_task(worker())
    except ExceptionGroup as errors:
        raise errors.exceptions[0] from None


def _part_path(final: Path, etag: str) -> Path:
    tag = hashlib.sha1(etag.encode()).hexdigest()[:10]
    return final.with_name(f".{final.name}.{tag}.part")


def _fsync_dir(d: Path) -> None:
    fd = os.open(d, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _fsync_file(p: Path) -> None:
    with p.open("rb") as fh:
        os.fsync(fh.fileno())


def _md5(path: Path) -> str:
    h = hashlib.md5()
    with path.open("rb") as fh:
        while chunk := fh.read(1 << 20):
            h.update(chunk)
    return h.hexdigest()


class Syncer:
    def __init__(self, opts: Options, hooks: Hooks) -> None:
        self.opts = opts
        self.sel = opts.selection
        self.hooks = hooks
        self.report = Report()
        regions = {opts.bucket: BUCKET_REGION, opts.legacy_bucket: LEGACY_BUCKET_REGION}
        self.s3 = AnonymousS3(
            opts.endpoint_url,
            regions=regions,
            retries=opts.retries,
            backoff=opts.backoff,
            connections=opts.jobs * 2,
        )

    # -- listing ------------------------------------------------------------------

    async def prefixes(self) -> list[Prefix]:
        sel, o = self.sel, self.opts
        out = raw_prefixes(sel, o.bucket)
        if needs_old_layouts(sel):
            if o.cans:
                out += can_prefixes(sel, o.bucket, o.legacy_bucket)
            else:
                tests = list(sel.tests)
                if not tests:  # every test directory OONI has under jsonl/
                    found = await self.s3.list(o.bucket, "jsonl/", delimiter="/")
                    tests = sorted({p.split("/")[1] for p in found.prefixes if p.count("/") == 2})
                out = jsonl_prefixes(sel, o.bucket, tests) + out
        return out

    async def list_items(self) -> list[Item]:
        prefixes = await self.prefixes()
        self.hooks.listing(0, len(prefixes))
        seen: dict[tuple[str, str], Item] = {}
        done = 0

        async def one(p: Prefix) -> None:
            nonlocal done
            listing = await self.s3.list(p.bucket, p.prefix)
            for o in listing.objects:
                if (i := _item(self.sel, p.bucket, p.layout, o)) is not None:
                    seen.setdefault((i.bucket, o.key), i)
            done += 1
            self.hooks.listing(done, len(prefixes))

        await _each(prefixes, self.opts.jobs, one)
        return sorted(seen.values(), key=lambda i: (i.bucket, i.obj.key))

    # -- per item -----------------------------------------------------------------

    def trusted(self, manifest: Manifest, item: Item) -> bool:
        """The manifest vouches for the local file (``--verify``: and it hashes right)."""
        entry = manifest.find(item.bucket, item.obj.key, str(item.local))
        if entry is None or not entry.still_matches(self.opts.dest, item.obj.size, item.obj.etag):
            return False
        if self.opts.verify_all and entry.measurements != 0:
            path = self.opts.dest / item.local
            if item.extracted:  # an extract: against the MD5 recorded when it was written
                ok = _md5(path) == entry.file_md5
            else:
                hint = entry.part_size or None
                ok = verify.check(path, item.obj.size, item.obj.etag, hint).ok
            if not ok:
                return False
        self.report.count_check(entry.verified)
        return True

    async def hint(self, item: Item) -> int | None:
        parsed = verify.etag_parts(item.obj.etag)
        if parsed is None or parsed[1] == 0:
            return None
        return await self.s3.part_size(item.bucket, item.obj.key)

    async def check(self, path: Path, item: Item) -> verify.Check:
        hint = await self.hint(item)
        return await asyncio.to_thread(verify.check, path, item.obj.size, item.obj.etag, hint)

    async def fetch_verified(self, item: Item, final: Path) -> verify.Check | None:
        """Download ``item`` to ``final`` through a verified ``.part``; two tries."""
        final.parent.mkdir(parents=True, exist_ok=True)
        part = _part_path(final, item.obj.etag)
        for stale in final.parent.glob(f".{final.name}.*.part"):
            if stale != part:
                stale.unlink(missing_ok=True)
        for attempt in (1, 2):
            start = await self.s3.download(item.bucket, item.obj, part, self._advance)
            self.report.downloaded += 1
            self.report.downloaded_bytes += item.obj.size - start
            if start:
                self.report.resumed += 1
                self._advance(start)  # the bytes an earlier run fetched count as done
            await asyncio.to_thread(_fsync_file, part)
            result = await self.check(part, item)
            if result.ok:
                part.replace(final)
                _fsync_dir(final.parent)
                return result
            part.unlink(missing_ok=True)
            self.report.refetched += 1
            if attempt == 2:
                self.report.failed.append(
                    f"s3://{item.bucket}/{item.obj.key}: downloaded twice, and both copies "
                    f"failed verification ({result.how})"
                )
        return None

    def _advance(self, n: int) -> None:
        self.hooks.advance(n)

    async def sync_object(self, manifest: Manifest, item: Item) -> str:
        dest = self.opts.dest
        final = dest / item.local
        if final.exists():
            result = await self.check(final, item)
            if result.ok:
                self._record(manifest, item, result)
                self.report.rechecked += 1
                self._advance(item.obj.size)
                return "verified"
            final.unlink()
            self.report.refetched += 1
        fetched = await self.fetch_verified(item, final)
        if fetched is None:
            return "failed"
        self._record(manifest, item, fetched)
        return "downloaded"

    def _record(self, manifest: Manifest, item: Item, result: verify.Check) -> None:
        size, mtime = stamp(self.opts.dest / item.local)
        o = item.obj
        how, part = result.how, result.part_size or 0
        manifest.record(
            Entry(item.bucket, o.key, o.size, o.etag, str(item.local), size, mtime, how, part)
        )
        self.report.count_check(how)

    async def sync_can(self, manifest: Manifest, item: Item) -> str:
        dest = self.opts.dest
        can = dest / ".didban-sync" / "cans" / item.bucket / item.obj.key
        if can.exists():  # kept from an earlier run: verify instead of downloading again
            result = await self.check(can, item)
            if not result.ok:
                can.unlink()
        else:
            result = None
        if result is None or not result.ok:
            result = await self.fetch_verified(item, can)
            if result is None:
                return "failed"
        out = dest / item.local
        try:
            if item.layout == "can":
                got = await asyncio.to_thread(cans.extract_can, can, self.sel.cc, out)
            else:
                got = await asyncio.to_thread(cans.extract_report, can, out)
        except cans.BadCan as exc:
            self.report.failed.append(f"s3://{item.bucket}/{item.obj.key}: {exc}")
            return "failed"
        self.report.cans += 1
        self.report.extracted_measurements += got.measurements
        self.report.yaml_skipped += got.yaml_skipped
        size, mtime = stamp(out) if got.measurements else (0, 0)
        digest = await asyncio.to_thread(_md5, out) if got.measurements else ""
        o = item.obj
        manifest.record(
            Entry(
                item.bucket, o.key, o.size, o.etag, str(item.local), size, mtime,
                result.how, result.part_size or 0, got.measurements, digest,
            )
        )  # fmt: skip
        self.report.count_check(result.how)
        if not self.opts.keep_cans:
            can.unlink(missing_ok=True)
        return "extracted"

    # -- the run --------------------------------------------------------------------

    async def run(self) -> Report:
        async with self.s3:
            items = await self.list_items()
            rep = self.report
            rep.retries = self.s3.retried
            rep.listed = len(items)
            rep.listed_bytes = sum(i.obj.size for i in items)
            if not items or self.opts.dry_run:
                return rep
            with Manifest(self.opts.dest) as manifest:
                trusted = await asyncio.to_thread(
                    lambda: [self.trusted(manifest, item) for item in items]
                )
                todo = []
                for item, ok in zip(items, trusted, strict=True):
                    if ok:
                        rep.already += 1
                        self._keep(item)
                        self.hooks.finished(item, "already")
                    else:
                        todo.append(item)
                self.hooks.planned(len(todo), sum(i.obj.size for i in todo))

                async def one(item: Item) -> None:
                    try:
                        if item.extracted:
                            outcome = await self.sync_can(manifest, item)
                        else:
                            outcome = await self.sync_object(manifest, item)
                    except S3Error as exc:
                        rep.failed.append(str(exc))
                        outcome = "failed"
                    except OSError as exc:
                        rep.failed.append(f"{self.opts.dest / item.local}: {exc}")
                        outcome = "failed"
                    if outcome != "failed":
                        self._keep(item)
                    self.hooks.finished(item, outcome)

                await _each(todo, self.opts.jobs, one)
        rep.retries = self.s3.retried
        rep.files.sort()
        return rep

    def _keep(self, item: Item) -> None:
        path = self.opts.dest / item.local
        if path.exists():
            self.report.files.append(path)


def sync(opts: Options, hooks: Hooks | None = None) -> Report:
    """Run one sync; raises ``S3Error`` when listing fails (nothing written then) and
    ``manifest.DestBusy`` when another sync holds the destination."""
    return asyncio.run(Syncer(opts, hooks or Hooks()).run())


def ingest_dirs(files: list[Path], sel: Selection) -> list[Path]:
    """The fewest directories that hold exactly the selection's files: each file's
    directory (one test of one country), or the country's directory of an hour when all
    tests are wanted."""
    dirs: set[Path] = set()
    for f in files:
        test_dir = f.parent
        country = test_dir.parent  # raw/<day>/<hour>/<CC>
        if not sel.tests and country.name == sel.cc and country.parent.parent.parent.name == "raw":
            dirs.add(country)
        else:
            dirs.add(test_dir)
    return sorted(dirs)
