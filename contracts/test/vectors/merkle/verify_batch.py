#!/usr/bin/env python3
"""Second, independent implementation of KACHING's signed batches (README "Signed batches").

Checks signed-batch.json with nothing but the Python standard library and the openssl CLI:
leaf = SHA-256(0x00 || signing_input), node = SHA-256(0x01 || left || right) (RFC 9162 section 2.1),
tree head over the leaves in order, each inclusion proof verified by RFC 9162 section 2.1.3.2, and the
Ed25519 signature over the RFC 8785 JSON {"root": base64, "schema": "kaching.v1.batch", "tree_size": n}
verified by openssl. Exits 0 and prints "ok" when everything holds.
"""
import base64, hashlib, json, os, subprocess, sys, tempfile

def h(*parts):
    d = hashlib.sha256()
    for p in parts:
        d.update(p)
    return d.digest()

def mth(leaves):
    if len(leaves) == 1:
        return leaves[0]
    k = 1
    while k * 2 < len(leaves):
        k *= 2
    return h(b"\x01", mth(leaves[:k]), mth(leaves[k:]))

def verify_inclusion(leaf, index, size, path, root):
    if index >= size:
        return False
    fn, sn, r = index, size - 1, leaf
    for p in path:
        if sn == 0:
            return False
        if fn & 1 or fn == sn:
            r = h(b"\x01", p, r)
            if not fn & 1:
                while not fn & 1 and fn != 0:
                    fn >>= 1
                    sn >>= 1
        else:
            r = h(b"\x01", r, p)
        fn >>= 1
        sn >>= 1
    return sn == 0 and r == root

def main(path):
    v = json.load(open(path, encoding="utf-8"))
    leaves = [h(b"\x00", e["signing_input"].encode("utf-8")) for e in v["events"]]
    for e, leaf in zip(v["events"], leaves):
        assert leaf.hex() == e["leaf_hash_hex"], "leaf hash of " + e["name"]
    root = mth(leaves)
    sig = v["batch_sig"]
    assert base64.b64encode(root).decode() == sig["root"], "tree head"
    assert sig["tree_size"] == len(leaves), "tree size"
    for i, (e, leaf) in enumerate(zip(v["events"], leaves)):
        proof = [base64.b64decode(p) for p in e["proof"]["path"]]
        assert e["proof"]["leaf_index"] == i and e["proof"]["tree_size"] == len(leaves)
        assert verify_inclusion(leaf, i, len(leaves), proof, root), "inclusion of " + e["name"]
    # RFC 8785 of this object: keys sorted, no spaces; base64 and an integer need no escaping
    signed = '{"root":"%s","schema":"kaching.v1.batch","tree_size":%d}' % (sig["root"], sig["tree_size"])
    assert signed == v["batch_signing_input"], "batch signing input"
    der = bytes.fromhex("302a300506032b6570032100") + base64.b64decode(v["public_key_base64"])
    with tempfile.TemporaryDirectory() as d:
        open(os.path.join(d, "pub.pem"), "w").write(
            "-----BEGIN PUBLIC KEY-----\n" + base64.b64encode(der).decode() + "\n-----END PUBLIC KEY-----\n")
        open(os.path.join(d, "msg"), "wb").write(signed.encode("utf-8"))
        open(os.path.join(d, "sig"), "wb").write(base64.b64decode(sig["signature"]))
        r = subprocess.run(["openssl", "pkeyutl", "-verify", "-pubin", "-inkey", os.path.join(d, "pub.pem"),
                            "-rawin", "-in", os.path.join(d, "msg"), "-sigfile", os.path.join(d, "sig")],
                           capture_output=True, text=True)
        assert r.returncode == 0, "signature: " + r.stdout + r.stderr
    print("ok")

if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(__file__), "signed-batch.json"))
