#!/usr/bin/env python3
"""Independent cosignature/v1 verifier, written from the C2SP texts (signed-note,
tlog-checkpoint, tlog-cosignature) and nothing else.

Usage: verify_cosignature.py NOTE_FILE VKEY...

For each vkey, prints one JSON line:
  {"vkey": ..., "name": ..., "result": "valid" | "invalid" | "absent", "timestamp": N | null}
"valid": a signature line with the vkey's name and key id verifies over
"cosignature/v1\\ntime <T>\\n" || the note text; "invalid": such a line exists but does not
verify; "absent": no such line. Exits 2 on a malformed note or vkey.
"""

import base64
import hashlib
import json
import sys

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

COSIGNATURE_V1 = 0x04
MAX_TIME = 2**63 - 1


def fail(message):
    print(message, file=sys.stderr)
    sys.exit(2)


def parse_note(data):
    # signed-note: the text (ending in a newline), a blank line, then signature lines
    # "\u2014 <name> <base64>", each ending in a newline.
    text = data.decode("utf-8")
    cut = text.rfind("\n\n")
    if cut < 0:
        fail("not a signed note: no blank line")
    body, sigs = text[: cut + 1], text[cut + 2 :]
    if not sigs.endswith("\n"):
        fail("the last signature line does not end in a newline")
    lines = []
    for line in sigs[:-1].split("\n"):
        if not line.startswith("\u2014 "):
            fail(f"not a signature line: {line!r}")
        name, _, b64 = line[2:].rpartition(" ")
        if not name or " " in name:
            fail(f"bad signature line: {line!r}")
        lines.append((name, base64.b64decode(b64, validate=True)))
    return body.encode("utf-8"), lines


def parse_vkey(vkey):
    name, key_id, b64 = vkey.split("+", 2)
    raw = base64.b64decode(b64, validate=True)
    if len(raw) != 33 or raw[0] != COSIGNATURE_V1:
        fail(f"{vkey}: not a cosignature/v1 key (0x04 || 32 bytes)")
    # key id = SHA-256(name || 0x0A || signature type || public key)[:4]
    computed = hashlib.sha256(name.encode() + b"\n" + raw).digest()[:4]
    if computed.hex() != key_id.lower():
        fail(f"{vkey}: key id {key_id} is not {computed.hex()}")
    return name, computed, Ed25519PublicKey.from_public_bytes(raw[1:])


def main(argv):
    if len(argv) < 3:
        fail(__doc__)
    with open(argv[1], "rb") as f:
        body, lines = parse_note(f.read())
    for vkey in argv[2:]:
        name, key_id, public = parse_vkey(vkey)
        result, timestamp = "absent", None
        for line_name, sig in lines:
            if line_name != name or sig[:4] != key_id:
                continue
            result = "invalid"
            if len(sig) != 4 + 8 + 64:
                break
            t = int.from_bytes(sig[4:12], "big")
            if t > MAX_TIME:
                break
            message = b"cosignature/v1\ntime " + str(t).encode() + b"\n" + body
            try:
                public.verify(sig[12:], message)
            except InvalidSignature:
                break
            result, timestamp = "valid", t
            break
        print(json.dumps({"vkey": vkey, "name": name, "result": result, "timestamp": timestamp}))


if __name__ == "__main__":
    main(sys.argv)
