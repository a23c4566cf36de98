#!/usr/bin/python3
"""Per-provider events and bytes of ETL files: the independent check.

A second implementation, written apart from common/etl (standard library
only), of what `labtrace inspect --providers` reports, so the C++ parser can
be compared against it (tests/common/etl_providers_test.cc runs it) and the
known-answer table in tests/common/etl_providers_known_answers.md can be
regenerated:

    tests/tools/etl_providers.py ../shared/testdata/etl/*.etl          # table
    tests/tools/etl_providers.py --tsv FILE...                         # for tests

Keys and rules (the same contract as common/etl/etl_providers.h):
  * EVENT_HEADER records (header types 0x12/0x13): the ProviderId GUID at
    +0x18. The name is the TraceLogging provider name if any event of that
    GUID carries one (extended item EVENT_HEADER_EXT_TYPE_PROV_TRAITS),
    source "tracelogging"; else the built-in table ("manifest"); else none
    ("unknown").
  * Classic EVENT_TRACE_HEADER / instance records (0x0A, 0x0B, 0x14, 0x15):
    the GUID at +0x18; named from the table ("mof") or "unknown".
  * Kernel records (SYSTEM 0x01-0x04, PERFINFO 0x10/0x11): the event group,
    the high byte of HookId at +6; key "kernel:0xNN", source "kernel-group".
  * Bytes: the record's size in its buffer (header included), rounded up to
    8 as records are stored. Compressed buffers count decompressed bytes.
Walking: buffers by BufferSize from offset 0; records from 0x48 to Offset;
a buffer that cannot be walked keeps the records read before the problem.
"""

import argparse
import os
import struct
import sys
import uuid

BUFFER_HEADER = 0x48
MAX_PROVIDERS = 4096

# Kernel event groups (high byte of HookId), with the class GUID where
# Microsoft documents one ("NT Kernel Logger Constants", MOF class pages);
# else the NT Kernel Logger's control GUID (SystemTraceControlGuid).
SYSTEM_TRACE = "9e814aad-3204-11d2-9a82-006008a86939"
KERNEL_GROUPS = {
    0x00: ("EventTrace", "68fdd900-4a3e-11d1-84f4-0000f80464e3"),
    0x01: ("DiskIo", "3d6fa8d4-fe05-11d0-9dda-00c04fd7ba7c"),
    0x02: ("PageFault", "3d6fa8d3-fe05-11d0-9dda-00c04fd7ba7c"),
    0x03: ("Process", "3d6fa8d0-fe05-11d0-9dda-00c04fd7ba7c"),
    0x04: ("FileIo", "90cbdc39-4a3e-11d1-84f4-0000f80464e3"),
    0x05: ("Thread", "3d6fa8d1-fe05-11d0-9dda-00c04fd7ba7c"),
    0x06: ("TcpIp", "9a280ac0-c8e0-11d1-84e2-00c04fb998a2"),
    0x07: ("Job", SYSTEM_TRACE),
    0x08: ("UdpIp", "bf3a50c5-a9c9-4988-a005-2df0b7c80f80"),
    0x09: ("Registry", "ae53722e-c863-11d2-8659-00c04fa321a1"),
    0x0A: ("DbgPrint", SYSTEM_TRACE),
    0x0B: ("SystemConfig", "01853a65-418f-4f36-aefc-dc0f1d2fd235"),
    0x0D: ("Wnf", SYSTEM_TRACE),
    0x0E: ("Pool", SYSTEM_TRACE),
    0x0F: ("PerfInfo", "ce1dbfb4-137e-4da6-87b0-3f59aa102cbc"),
    0x10: ("Heap", SYSTEM_TRACE),
    0x11: ("Object", SYSTEM_TRACE),
    0x12: ("Power", SYSTEM_TRACE),
    0x13: ("Modbound", SYSTEM_TRACE),
    0x14: ("Image", "2cb15d1d-5fc1-11d2-abe1-00a0c911f518"),
    0x15: ("Dpc", SYSTEM_TRACE),
    0x16: ("CacheManager", SYSTEM_TRACE),
    0x17: ("CritSec", SYSTEM_TRACE),
    0x18: ("StackWalk", "def2fe46-7bd6-4b80-bd94-f57fe20d0ce3"),
    0x19: ("Ums", SYSTEM_TRACE),
    0x1A: ("ALPC", "45d8cccd-539f-4b72-a8b7-5c683142609a"),
    0x1B: ("SplitIo", "d837ca92-12b9-44a5-ad6a-3a65b3578aa8"),
    0x1C: ("ThreadPool", SYSTEM_TRACE),
    0x1D: ("Hypervisor", SYSTEM_TRACE),
    0x1E: ("HypervisorX", SYSTEM_TRACE),
}

# A few providers by GUID, for names (kept apart from the C++ table on
# purpose; the test compares the names both produce for the test files).
KNOWN = {
    "edd08927-9cc4-4e65-b970-c2560fb5c289": "Microsoft-Windows-Kernel-File",
    "22fb2cd6-0e7b-422b-a0c7-2fad1fd0e716": "Microsoft-Windows-Kernel-Process",
    "c7bde69a-e1e0-4177-b6ef-283ad1525271": "Microsoft-Windows-Kernel-Disk",
    "d1d93ef7-e1f2-4f45-9943-03d245fe6c00": "Microsoft-Windows-Kernel-Memory",
    "e13c0d23-ccbc-4e12-931b-d9cc2eee27e4": "Microsoft-Windows-DotNETRuntime",
    "a669021c-c450-4609-a035-5af59af4df18":
        "Microsoft-Windows-DotNETRuntimeRundown",
    "a0c1853b-5c40-4b15-8766-3cf1c58f985a": "Microsoft-Windows-PowerShell",
    "9b79ee91-b5fd-41c0-a243-4248e266e9d0": "KernelTraceControl/SystemConfigEx",
    "b3e675d7-2554-4f18-830b-2762732560de": "KernelTraceControl/ImageId",
    "bbccf6c1-6cd1-48c4-80ff-839482e37671": "EventMetadata",
    "ed54dff8-c409-4cf6-bf83-05e1e61a09c4": "WinSATAssessment",
    # Kernel MOF classes, when classic events carry them by GUID.
    "2cb15d1d-5fc1-11d2-abe1-00a0c911f518": "Kernel/Image",
    "68fdd900-4a3e-11d1-84f4-0000f80464e3": "Kernel/EventTrace",
}


def lz77_plain(src, limit):
    """MS-XCA plain LZ77 ([MS-XCA] 2.4), at most `limit` bytes out."""
    out = bytearray()
    i = 0
    flags = 0
    nflags = 0
    nibble_at = None
    while len(out) < limit:
        if nflags == 0:
            if i + 4 > len(src):
                break
            flags = struct.unpack_from("<I", src, i)[0]
            i += 4
            nflags = 32
        nflags -= 1
        if not (flags >> nflags) & 1:
            if i >= len(src):
                break
            out.append(src[i])
            i += 1
            continue
        if i + 2 > len(src):
            break
        token = struct.unpack_from("<H", src, i)[0]
        i += 2
        distance = (token >> 3) + 1
        length = token & 7
        if length == 7:
            if nibble_at is None:
                nibble_at = i
                length = src[i] & 0xF
                i += 1
            else:
                length = src[nibble_at] >> 4
                nibble_at = None
            if length == 15:
                length = src[i]
                i += 1
                if length == 255:
                    length = struct.unpack_from("<H", src, i)[0]
                    i += 2
                    if length == 0:
                        length = struct.unpack_from("<I", src, i)[0]
                        i += 4
                    length -= 15 + 7
                length += 15
            length += 7
        length += 3
        if distance > len(out):
            raise ValueError("LZ77 match before the start")
        for _ in range(length):
            if len(out) >= limit:
                break
            out.append(out[-distance])
    return bytes(out)


def guid_at(data, off):
    return str(uuid.UUID(bytes_le=bytes(data[off:off + 16])))


def traits_name(rec):
    """The TraceLogging provider name in an EVENT_HEADER record, or None."""
    flags = struct.unpack_from("<H", rec, 4)[0]
    if not flags & 0x0001 or len(rec) < 0x50:
        return None
    at = 0x50
    for _ in range(64):
        if at + 8 > len(rec):
            return None
        item_size, ext_type, linkage, data_size = struct.unpack_from(
            "<HHHH", rec, at)
        if item_size < 8 or at + item_size > len(rec) or 8 + data_size > item_size:
            return None
        if ext_type == 0x000C and data_size >= 3:
            data = rec[at + 8:at + 8 + data_size]
            total = struct.unpack_from("<H", data, 0)[0]
            body = data[2:min(len(data), total)]
            end = body.find(b"\0")
            name = body[:end if end >= 0 else len(body)][:256]
            if name:
                # Printable ASCII kept, anything else '?' (as the C++ does).
                return "".join(chr(c) if 0x20 <= c < 0x7F else "?"
                               for c in name)
        if not linkage & 1:
            return None
        at += item_size
    return None


class Tally:
    def __init__(self, max_providers=MAX_PROVIDERS):
        self.max = max_providers
        self.rows = {}  # key -> dict

    def add(self, rec, stored):
        htype = rec[2]
        if htype in (0x01, 0x02, 0x03, 0x04, 0x10, 0x11):
            group = rec[7] if len(rec) >= 8 else 0
            name, guid = KERNEL_GROUPS.get(group, ("group 0x%02x" % group,
                                                   SYSTEM_TRACE))
            key = "kernel:0x%02x" % group
            row = self._row(key, guid, "Kernel/" + name, "kernel-group")
        else:
            if len(rec) < 0x28:
                guid = "00000000-0000-0000-0000-000000000000"
            else:
                guid = guid_at(rec, 0x18)
            kind = "manifest" if htype in (0x12, 0x13) else "mof"
            row = self._row(guid, guid, None, kind)
            if kind == "manifest" and not row["tl"] and row["key"] != "other":
                row["tl"] = traits_name(rec) or ""
        row["events"] += 1
        row["bytes"] += stored

    def _row(self, key, guid, name, kind):
        row = self.rows.get(key)
        if row is None:
            tracked = len(self.rows) - ("other" in self.rows)
            if tracked >= self.max:
                key, guid, name, kind = "other", "", "other providers", "other"
                row = self.rows.get(key)
            if row is None:
                row = {"key": key, "guid": guid, "name": name, "kind": kind,
                       "events": 0, "bytes": 0, "tl": ""}
                self.rows[key] = row
        return row

    def result(self):
        out = []
        for row in self.rows.values():
            r = dict(row)
            if r["kind"] in ("manifest", "mof"):
                if r["tl"]:
                    r["name"], r["source"] = r["tl"], "tracelogging"
                elif r["guid"] in KNOWN:
                    r["name"], r["source"] = KNOWN[r["guid"]], r["kind"]
                else:
                    r["name"], r["source"] = "", "unknown"
            else:
                r["source"] = r["kind"]
            del r["kind"], r["tl"]
            out.append(r)
        out.sort(key=lambda r: (-r["bytes"], r["key"]))
        return out


def walk(path, max_providers=MAX_PROVIDERS):
    with open(path, "rb") as f:
        data = f.read()
    tally = Tally(max_providers)
    info = {"file": os.path.basename(path), "size": len(data), "records": 0,
            "events_lost": 0, "buffers_lost": 0, "problems": []}
    pos = 0
    while pos + BUFFER_HEADER <= len(data):
        size, = struct.unpack_from("<I", data, pos)
        if size < BUFFER_HEADER or pos + size > len(data):
            info["problems"].append("buffer at %#x does not fit" % pos)
            break
        offset, = struct.unpack_from("<I", data, pos + 0x30)
        bflags, = struct.unpack_from("<H", data, pos + 0x34)
        if offset < BUFFER_HEADER:
            info["problems"].append("buffer at %#x: bad Offset" % pos)
            pos += size
            continue
        if bflags & 0x40:
            try:
                payload = lz77_plain(data[pos + BUFFER_HEADER:pos + size],
                                     offset - BUFFER_HEADER)
            except (ValueError, IndexError, struct.error):
                info["problems"].append("buffer at %#x: bad LZ77" % pos)
                pos += size
                continue
        else:
            payload = data[pos + BUFFER_HEADER:pos + min(offset, size)]
        if pos == 0 and len(payload) >= 0x20 + 0x38:
            h = 0x20  # TRACE_LOGFILE_HEADER after the SYSTEM_TRACE_HEADER.
            info["events_lost"] = struct.unpack_from("<I", payload, h + 0x30)[0]
            is64 = payload[2] == 2
            tail = 0xF8 if is64 else 0xF0
            if len(payload) >= h + tail + 0x20:
                info["buffers_lost"] = struct.unpack_from(
                    "<I", payload, h + tail + 0x1C)[0]
        at = 0
        while at + 4 <= len(payload):
            if payload[at:at + 4] == b"\xff\xff\xff\xff":
                break
            htype = payload[at + 2]
            if htype in (0x0A, 0x0B, 0x12, 0x13, 0x14, 0x15):
                rsize = struct.unpack_from("<H", payload, at)[0]
            elif htype in (0x01, 0x02, 0x03, 0x04, 0x10, 0x11):
                if at + 6 > len(payload):
                    info["problems"].append("buffer at %#x: cut record" % pos)
                    break
                rsize = struct.unpack_from("<H", payload, at + 4)[0]
            else:
                info["problems"].append(
                    "buffer at %#x: header type %#x" % (pos, htype))
                break
            if rsize < 4 or at + rsize > len(payload):
                info["problems"].append("buffer at %#x: bad record" % pos)
                break
            stored = (rsize + 7) & ~7
            tally.add(payload[at:at + rsize], stored)
            info["records"] += 1
            at += stored
        pos += size
    info["providers"] = tally.result()
    return info


def human(n):
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return ("%d %s" % (n, unit)) if unit == "B" else ("%.1f %s" % (n, unit))
        n /= 1024.0
    return str(n)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("files", nargs="+")
    ap.add_argument("--tsv", action="store_true",
                    help="one line per provider: file, key, guid, source, "
                         "events, bytes, name (tab-separated)")
    ap.add_argument("--max-providers", type=int, default=MAX_PROVIDERS)
    args = ap.parse_args()
    for path in args.files:
        info = walk(path, args.max_providers)
        total = sum(r["bytes"] for r in info["providers"])
        if args.tsv:
            print("file\t%s\t%d\t%d\t%d\t%d" % (info["file"], info["records"], total,
                                              info["events_lost"], info["buffers_lost"]))
            for r in info["providers"]:
                print("provider\t%s\t%s\t%s\t%s\t%d\t%d\t%s" % (
                    info["file"], r["key"], r["guid"], r["source"], r["events"],
                    r["bytes"], r["name"]))
            continue
        print("### %s (%d bytes; %d records, %d record bytes; events lost %d, "
              "buffers lost %d)" % (info["file"], info["size"], info["records"],
                                    total, info["events_lost"],
                                    info["buffers_lost"]))
        print()
        print("| provider | key | source | events | bytes | % of bytes |")
        print("|---|---|---|---|---|---|")
        for r in info["providers"]:
            pct = 100.0 * r["bytes"] / total if total else 0.0
            print("| %s | `%s` | %s | %d | %d | %.1f |" % (
                r["name"] or r["guid"], r["key"], r["source"], r["events"],
                r["bytes"], pct))
        if info["problems"]:
            print()
            print("problems: " + "; ".join(info["problems"]))
        print()
    return 0


if __name__ == "__main__":
    sys.exit(main())
