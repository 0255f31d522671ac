"""`rewardkit cache list|clear`: the tokenized cache's entries, their size and last use, and freeing space.

Both take ``--cache-dir`` (default: ``$REWARDKIT_CACHE_DIR``, else ``~/.cache/rewardkit/tokenized``, as
``data.cache_dir`` null does). An entry that a running process reads is never removed (data/cache_store.py).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path


def _root(args) -> Path:
    from .data.cache import default_cache_dir

    return Path(args.cache_dir) if args.cache_dir else default_cache_dir()


def _row(e) -> dict:
    return {"key": e.key, "mb": round(e.bytes / 1e6, 3), "last_used": time.strftime("%Y-%m-%d %H:%M:%S",
            time.localtime(e.last_used)), "in_use": e.in_use, "source": e.source}


def cmd_cache_list(args, overrides: list[str]) -> int:
    from .data.cache_store import entries

    root = _root(args)
    found = entries(root)
    if args.json:
        print(json.dumps({"cache_dir": str(root), "entries": [_row(e) for e in found],
                          "total_mb": round(sum(e.bytes for e in found) / 1e6, 3)}))
        return 0
    print(f"{root}: {len(found)} entries, {sum(e.bytes for e in found) / 1e6:.1f} MB (least recently used first)")
    for e in found:
        r = _row(e)
        print(f"  {r['key']}  {r['mb']:10.1f} MB  {r['last_used']}  {'in use  ' if e.in_use else '        '}"
              f"{r['source'] or '-'}")
    return 0


def cmd_cache_clear(args, overrides: list[str]) -> int:
    from .data.cache_store import clear

    if not (args.all or args.older_than is not None or args.max_gb is not None):
        raise ValueError("cache clear: say what to remove: --all, --older-than DAYS or --max-gb SIZE")
    for flag, value in (("--older-than", args.older_than), ("--max-gb", args.max_gb)):
        if value is not None and not value >= 0:
            raise ValueError(f"cache clear: {flag} {value} must be >= 0")
    root = _root(args)
    removed, busy = clear(root, older_than_days=args.older_than, everything=args.all,
                          max_bytes=None if args.max_gb is None else int(args.max_gb * 2**30))
    print(f"{root}: removed {len(removed)} entries ({sum(e.bytes for e in removed) / 1e6:.1f} MB)"
          + (f"; {len(busy)} in use, kept" if busy else ""))
    return 0


def add_cache_parser(sub) -> None:
    c = sub.add_parser("cache", help="list or clear the tokenized data cache").add_subparsers(
        dest="cache_command", required=True)
    where = argparse.ArgumentParser(add_help=False)
    where.add_argument("--cache-dir", default=None, help="the cache directory (default: $REWARDKIT_CACHE_DIR, else "
                       "~/.cache/rewardkit/tokenized)")
    ls = c.add_parser("list", parents=[where], help="entries with size, last use and source, least recently used first")
    ls.add_argument("--json", action="store_true", help="one JSON object")
    ls.set_defaults(func=cmd_cache_list)
    cl = c.add_parser("clear", parents=[where], help="remove entries (never one a running process reads)")
    cl.add_argument("--all", action="store_true", help="every entry, and the remembered file digests")
    cl.add_argument("--older-than", type=float, default=None, metavar="DAYS", help="entries not used for DAYS days")
    cl.add_argument("--max-gb", type=float, default=None, metavar="SIZE",
                    help="least recently used entries until the cache is at most SIZE GB")
    cl.set_defaults(func=cmd_cache_clear)
