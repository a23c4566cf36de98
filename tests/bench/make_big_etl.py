#!/usr/bin/env python3
"""make_big_etl.py: a large, valid ETL file made of a real file's buffers.

Usage: tests/bench/make_big_etl.py OUT [--size-mb N] [--source FILE]

Keeps the source's first buffer (the logfile header buffer), then repeats
its data buffers, in file order, until the next one would pass N MiB
(default 1024). The output is N MiB exactly when the buffers divide it
(the default source has 64 KiB buffers), else a little less; never less
than the header buffer and one data buffer. Default source:
../shared/testdata/etl/airbus_ShutdownPerfDiagLogger.etl next to the repo
(a kernel logger session: 49 buffers of 64 KiB, 17,078 events).

Fixed up so the copy is one consistent trace (see
../shared/testdata/etl/README.md for the layout, common/etl/etl_summary.cc
for what labtrace checks):
  - TRACE_LOGFILE_HEADER.BuffersWritten (header buffer + 0x68 + 0x24) = the
    number of buffers in the output;
  - MaximumFileSize (+0x1C; MB, or KB with USE_KBYTES_FOR_SIZE 0x2000),
    when set and smaller than the output, raised to fit it;
  - each data buffer's SequenceNumber (buffer + 0x18): repeat k adds
    k * (max - min + 1) of the source's data-buffer range, so the numbers
    stay unique and keep the source's order within each repeat.
Everything else (timestamps, events) is copied as is. Only the standard
library; the output is written sequentially, one repeat at a time.
Check it with: build/controller/labtrace inspect OUT --json
"""

import argparse
import os
import struct
import sys

BUFFER_HEADER = 0x48
LOGFILE_HEADER = 0x68  # BUFFER_HEADER + SYSTEM_TRACE_HEADER (0x20)
MAX_BUFFER = 64 << 20  # The parser's limit too.


def die(msg):
    sys.exit("make_big_etl: " + msg)


def split_buffers(data):
    """The file as [(offset, size)], walking BufferSize from 0 to EOF."""
    bufs, pos = [], 0
    while pos < len(data):
        if pos + BUFFER_HEADER > len(data):
            die("%d stray bytes at the end of the source" % (len(data) - pos))
        size = struct.unpack_from("<I", data, pos)[0]
        if size < BUFFER_HEADER or size > MAX_BUFFER or pos + size > len(data):
            die("bad buffer size %d at offset %#x of the source" % (size, pos))
        bufs.append((pos, size))
        pos += size
    return bufs


def main():
    default_source = os.path.join(
        os.path.dirname(os.path.abspath(__file__)), "..", "..", "..",
        "shared", "testdata", "etl", "airbus_ShutdownPerfDiagLogger.etl")
    ap = argparse.ArgumentParser(
        description="Build a large valid ETL file from a real one's buffers.")
    ap.add_argument("out", help="output file")
    ap.add_argument("--size-mb", type=int, default=1024,
                    help="size in MiB (default 1024)")
    ap.add_argument("--source", default=os.path.normpath(default_source),
                    help="a real ETL file (default %(default)s)")
    args = ap.parse_args()
    if args.size_mb <= 0:
        die("--size-mb must be positive")

    with open(args.source, "rb") as f:
        data = f.read()
    bufs = split_buffers(data)
    if len(bufs) < 2:
        die("the source needs a header buffer and at least one data buffer")
    hdr_off, hdr_size = bufs[0]
    header = bytearray(data[hdr_off:hdr_off + hdr_size])
    if hdr_size < LOGFILE_HEADER + 0x118:
        die("the first buffer is too small for a logfile header")
    marker = struct.unpack_from("<I", header, BUFFER_HEADER)[0]
    if marker & 0xFFFF != 2 or header[BUFFER_HEADER + 2] not in (1, 2) \
            or header[BUFFER_HEADER + 3] != 0xC0:
        die("no logfile header record in the first buffer (marker %#x)" % marker)
    if struct.unpack_from("<H", header, 0x34)[0] & 0x40:
        die("the header buffer is compressed")
    data_bufs = bufs[1:]
    seqs = [struct.unpack_from("<q", data, off + 0x18)[0] for off, _ in data_bufs]
    span = max(seqs) - min(seqs) + 1

    # Which buffers fit: the header, then data buffers in a cycle.
    target = args.size_mb << 20
    total, count = hdr_size, 0
    while True:
        size = data_bufs[count % len(data_bufs)][1]
        if total + size > target and count > 0:
            break
        total += size
        count += 1
    n_buffers = 1 + count

    struct.pack_into("<I", header, LOGFILE_HEADER + 0x24, n_buffers)
    mode = struct.unpack_from("<I", header, LOGFILE_HEADER + 0x20)[0]
    unit = 1 << 10 if mode & 0x2000 else 1 << 20
    max_size = struct.unpack_from("<I", header, LOGFILE_HEADER + 0x1C)[0]
    if max_size and max_size * unit < total:
        struct.pack_into("<I", header, LOGFILE_HEADER + 0x1C,
                         min(-(-total // unit), 0xFFFFFFFF))

    tmp = args.out + ".tmp"
    with open(tmp, "wb") as out:
        out.write(header)
        k, left = 0, count
        while left > 0:
            take = min(left, len(data_bufs))
            chunk = bytearray(data[data_bufs[0][0]:data_bufs[take - 1][0] +
                                   data_bufs[take - 1][1]])
            base = data_bufs[0][0]
            for i in range(take):
                at = data_bufs[i][0] - base + 0x18
                struct.pack_into("<q", chunk, at, seqs[i] + k * span)
            out.write(chunk)
            left -= take
            k += 1
    os.replace(tmp, args.out)
    print("%s: %d bytes, %d buffers (1 header + %d data: %d copies of the "
          "%d data buffers + %d), from %s" % (
              args.out, total, n_buffers, count, count // len(data_bufs),
              len(data_bufs), count % len(data_bufs), args.source),
          file=sys.stderr)


if __name__ == "__main__":
    main()
