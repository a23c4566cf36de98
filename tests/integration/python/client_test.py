#!/usr/bin/env python3
"""A client of another gRPC implementation (Debian's python3-grpcio, stubs
generated from our .proto at test time) against a real labtrace-agent with
tokens: info, start, stop, a streamed fetch verified with sha256, and the
auth errors. Prints the plain summary line "N passed, N failed".

Usage: client_test.py AGENT_BIN FAKE_WPR ETL_FILE PROTO_DIR
Exit 77 (skipped) when grpcio or grpc_tools is missing.
"""
import hashlib
import os
import subprocess
import sys
import tempfile
import time

try:
    import grpc
    from grpc_tools import protoc
except ImportError as e:
    print(f"SKIP: {e} (apt-get install python3-grpcio python3-grpc-tools)")
    sys.exit(77)

agent_bin, fake_wpr, etl, proto_dir = sys.argv[1:5]
if not os.path.isfile(etl):
    print(f"SKIP: {etl} is missing (../shared/testdata/etl is not beside this checkout)")
    sys.exit(77)
TOKEN = "python-client-token"
work = tempfile.mkdtemp(prefix="labtrace_py_")
passed = failed = 0


def check(cond, what):
    global passed, failed
    if cond:
        passed += 1
    else:
        failed += 1
        print(f"FAIL: {what}")


# Stubs from our own .proto.
gen = os.path.join(work, "gen")
os.makedirs(gen)
rc = protoc.main(["protoc", f"-I{proto_dir}", f"--python_out={gen}", f"--grpc_python_out={gen}",
                  os.path.join(proto_dir, "labtrace/v1/agent.proto")])
if rc != 0:
    print("FAIL: protoc could not generate the Python stubs")
    sys.exit(1)
sys.path.insert(0, gen)
from labtrace.v1 import agent_pb2, agent_pb2_grpc  # noqa: E402

with open(os.path.join(work, "agent.yaml"), "w") as f:
    f.write(f"wpr: {{path: {fake_wpr}}}\n"
            "profiles: [{name: general, backend: wpr, args: [GeneralProfile]}]\n"
            "tokens:\n"
            f"  - {{name: py, role: control, sha256: {hashlib.sha256(TOKEN.encode()).hexdigest()}}}\n")
os.makedirs(os.path.join(work, "wpr"))
env = dict(os.environ, FAKE_WPR_STATE_DIR=os.path.join(work, "wpr"), FAKE_WPR_ETL_SOURCE=etl)
port_file = os.path.join(work, "port")
agent = subprocess.Popen([agent_bin, "--config", os.path.join(work, "agent.yaml"), "--listen",
                          "127.0.0.1:0", "--rest-listen", "off", "--port-file", port_file,
                          "--data-dir", os.path.join(work, "data"), "--log-level", "warn"],
                         env=env)
try:
    for _ in range(200):
        if os.path.exists(port_file) and os.path.getsize(port_file) > 0:
            break
        time.sleep(0.05)
    port = int(open(port_file).readline())
    channel = grpc.insecure_channel(f"127.0.0.1:{port}")
    stub = agent_pb2_grpc.TraceAgentStub(channel)
    auth = [("authorization", f"Bearer {TOKEN}")]

    try:
        stub.GetAgentInfo(agent_pb2.GetAgentInfoRequest(), timeout=10)
        check(False, "GetAgentInfo without a token must fail")
    except grpc.RpcError as e:
        check(e.code() == grpc.StatusCode.UNAUTHENTICATED, f"no token -> {e.code()}")

    info = stub.GetAgentInfo(agent_pb2.GetAgentInfoRequest(), metadata=auth, timeout=10)
    check(info.version != "", "version reported")
    check([p.name for p in info.profiles] == ["general"], f"profiles {info.profiles}")

    s = stub.StartTrace(agent_pb2.StartTraceRequest(name="py_op", profile="general",
                                                    mode=agent_pb2.TRACE_MODE_FILE,
                                                    run_id="py"), metadata=auth, timeout=30)
    check(s.state == agent_pb2.TRACE_STATE_RUNNING, f"state {s.state}")
    r = stub.StopTrace(agent_pb2.StopTraceRequest(name="py_op"), metadata=auth, timeout=60)
    a = r.artifact
    check(a.file_name.endswith(".etl"), f"file name {a.file_name}")

    h = hashlib.sha256()
    first = True
    for chunk in stub.FetchArtifact(agent_pb2.FetchArtifactRequest(artifact_id=a.id),
                                    metadata=auth, timeout=60):
        if first:
            check(chunk.total_size == a.size_bytes and chunk.sha256 == a.sha256,
                  "first chunk carries size and digest")
            first = False
        h.update(chunk.data)
    check(h.hexdigest() == a.sha256, "fetched bytes match the sha256")
    check(a.sha256 == hashlib.sha256(open(etl, "rb").read()).hexdigest(), "digest of the source")

    try:
        stub.StopAllTraces(agent_pb2.StopAllTracesRequest(), metadata=auth, timeout=10)
        check(False, "StopAllTraces with a control token must fail")
    except grpc.RpcError as e:
        check(e.code() == grpc.StatusCode.PERMISSION_DENIED, f"control token -> {e.code()}")
    try:
        stub.GetArtifact(agent_pb2.GetArtifactRequest(artifact_id="../../etc/passwd"),
                         metadata=auth, timeout=10)
        check(False, "a path-like id must not resolve")
    except grpc.RpcError as e:
        check(e.code() == grpc.StatusCode.NOT_FOUND, f"path-like id -> {e.code()}")
finally:
    agent.terminate()
    agent.wait(timeout=30)

print(f"{passed} passed, {failed} failed")
sys.exit(1 if failed else 0)
