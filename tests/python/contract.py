"""The KeyService contract, checked with another gRPC implementation.

Generates a Python client from proto/keyward/v1/keyward.proto with grpcio-tools
and walks the quickstart: issue, verify, a missing scope, rotate with a short
grace, revoke. Usage: contract.py HOST:PORT (admin key in KEYWARD_ADMIN_KEY).
"""

import os
import sys
import tempfile
import time

from protogen import check, generate


def main():
    target = sys.argv[1]
    admin = [("authorization", f"Bearer {os.environ['KEYWARD_ADMIN_KEY']}")]
    with tempfile.TemporaryDirectory() as out:
        generate(out, grpc_stubs=True)
        import grpc
        from google.protobuf import duration_pb2
        from keyward.v1 import keyward_pb2 as pb
        from keyward.v1 import keyward_pb2_grpc as rpc

        stub = rpc.KeyServiceStub(grpc.insecure_channel(target))
        issued = stub.Issue(
            pb.IssueRequest(project="pyproj", label="py", scopes=["orders:read"], metadata={"lang": "python"}),
            metadata=admin,
        )
        check(issued.key.startswith("pyproj_"), "Issue returns the key")
        check(issued.info.status == pb.KEY_STATUS_ACTIVE, "Issue returns an active KeyInfo")

        ok = stub.Verify(pb.VerifyRequest(key=issued.key, required_scopes=["orders:read"]))
        check(ok.allowed and ok.reason == pb.REASON_OK and ok.key_id == issued.info.id, "Verify allows")

        lacking = stub.Verify(pb.VerifyRequest(key=issued.key, required_scopes=["orders:write"]))
        check(not lacking.allowed and lacking.reason == pb.REASON_INSUFFICIENT_SCOPE, "Verify: INSUFFICIENT_SCOPE")

        rotated = stub.Rotate(
            pb.RotateRequest(key_id=issued.info.id, grace_period=duration_pb2.Duration(seconds=1)),
            metadata=admin,
        )
        check(rotated.previous.status == pb.KEY_STATUS_ROTATING, "Rotate leaves the old key rotating")
        check(stub.Verify(pb.VerifyRequest(key=issued.key)).allowed, "old key works during the grace period")
        time.sleep(1.2)
        old = stub.Verify(pb.VerifyRequest(key=issued.key))
        check(not old.allowed and old.reason == pb.REASON_REVOKED, "old key denied after the grace period")

        stub.Revoke(pb.RevokeRequest(key_id=rotated.info.id, reason="done"), metadata=admin)
        gone = stub.Verify(pb.VerifyRequest(key=rotated.key))
        check(not gone.allowed and gone.reason == pb.REASON_REVOKED, "revoked key denied")

        listed = stub.ListKeys(pb.ListKeysRequest(project="pyproj"), metadata=admin)
        check(len(listed.keys) == 2, "ListKeys shows both keys")

        try:
            stub.GetKey(pb.GetKeyRequest(key_id=issued.info.id))
            check(False, "GetKey without an admin key is refused")
        except grpc.RpcError as e:
            check(e.code() == grpc.StatusCode.UNAUTHENTICATED, "GetKey without an admin key is UNAUTHENTICATED")
    print("contract ok")


if __name__ == "__main__":
    main()
