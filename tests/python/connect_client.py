"""The KeyService over the Connect protocol, called by another team's Connect
implementation (Python `connectrpc`), with its JSON codec and its binary one.

Messages come from proto/keyward/v1/keyward.proto through grpcio-tools (so
connectrpc's codecs for google.protobuf messages are used); the method table is written out here (connectrpc's own code generator is not on
PyPI as a plain package). Walks issue, verify, rotate, revoke, verify, and an
unauthenticated Issue. Usage: connect_client.py http://HOST:PORT (admin key in
KEYWARD_ADMIN_KEY).
"""

import os
import sys
import tempfile

from protogen import check, generate


def main():
    address = sys.argv[1]
    admin = {"authorization": f"Bearer {os.environ['KEYWARD_ADMIN_KEY']}"}
    with tempfile.TemporaryDirectory() as out:
        generate(out)
        from connectrpc.client import ConnectClientSync
        from connectrpc.code import Code
        from connectrpc.compat import google_protobuf_binary_codec, google_protobuf_json_codec
        from connectrpc.errors import ConnectError
        from connectrpc.method import IdempotencyLevel, MethodInfo, StreamType
        from google.protobuf import duration_pb2
        from keyward.v1 import keyward_pb2 as pb

        def method(name, request, response):
            return MethodInfo(
                name=name,
                service_name="keyward.v1.KeyService",
                input=request,
                output=response,
                idempotency_level=IdempotencyLevel.UNKNOWN,
                stream_type=StreamType.UNARY,
            )

        issue = method("Issue", pb.IssueRequest, pb.IssueResponse)
        verify = method("Verify", pb.VerifyRequest, pb.VerifyResponse)
        rotate = method("Rotate", pb.RotateRequest, pb.RotateResponse)
        revoke = method("Revoke", pb.RevokeRequest, pb.RevokeResponse)

        for name, codec in [("json", google_protobuf_json_codec()), ("proto", google_protobuf_binary_codec())]:
            # keyward takes identity bodies only (its messages are small).
            with ConnectClientSync(address, codec=codec, send_compression=None, timeout_ms=10000) as client:
                def call(m, request, headers=None):
                    return client.execute_unary(request=request, method=m, headers=headers)

                issued = call(issue, pb.IssueRequest(project="pyconnect", label=f"py-{name}", scopes=["orders:read"]), admin)
                check(issued.key.startswith("pyconnect_"), f"{name}: Issue returns the key")
                ok = call(verify, pb.VerifyRequest(key=issued.key, required_scopes=["orders:read"]))
                check(ok.allowed and ok.reason == pb.REASON_OK and ok.key_id == issued.info.id, f"{name}: Verify allows")
                rotated = call(rotate, pb.RotateRequest(key_id=issued.info.id, grace_period=duration_pb2.Duration(seconds=0)), admin)
                old = call(verify, pb.VerifyRequest(key=issued.key))
                check(not old.allowed and old.reason == pb.REASON_REVOKED, f"{name}: rotated key denied at once")
                call(revoke, pb.RevokeRequest(key_id=rotated.info.id, reason="done"), admin)
                gone = call(verify, pb.VerifyRequest(key=rotated.key))
                check(not gone.allowed and gone.reason == pb.REASON_REVOKED, f"{name}: revoked key denied")
                try:
                    call(issue, pb.IssueRequest(project="pyconnect", label="anon"))
                    check(False, f"{name}: Issue without an admin key is refused")
                except ConnectError as e:
                    check(e.code == Code.UNAUTHENTICATED, f"{name}: Issue without an admin key is unauthenticated")
    print("connect ok")


if __name__ == "__main__":
    main()
