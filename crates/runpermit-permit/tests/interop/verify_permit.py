#!/usr/bin/env python3
"""Independent verifier for runpermit tokens, using PyJWT (not runpermit's code).

Usage: verify_permit.py --jwks JWKS.json [--kind permit|access|exemption|status|usage] [--leeway SECONDS] TOKEN_FILE...

For each token file, prints one JSON line:
  {"file": ..., "ok": true, "header": {...}, "claims": {...}}
  {"file": ..., "ok": false, "error": "<exception class name>", "message": "..."}

The key is chosen by the header's kid from the JWKS (PyJWT's PyJWKSet; an unknown kid
raises KeyError). Only alg EdDSA is allowed. Permits and access grants must carry exp, nbf
and iat, which PyJWT checks against this machine's clock; status lists exp and iat; receipts
and usage reports iat. The header typ must name the expected token type (RFC 7515: case-insensitive,
"application/" optional).

Needs: pip install 'pyjwt==2.15.*' cryptography
"""

import argparse
import json
import sys

import jwt

TYP = {
    "permit": "runpermit-permit+jwt",
    "access": "runpermit-access+jwt",
    "exemption": "runpermit-exemption+jwt",
    "status": "runpermit-status+jwt",
    "usage": "runpermit-usage+jwt",
}
REQUIRED = {
    "permit": ["exp", "nbf", "iat"],
    "access": ["exp", "nbf", "iat"],
    "exemption": ["iat"],
    "status": ["exp", "iat"],
    "usage": ["iat"],
}


def bare_typ(typ):
    typ = typ.lower()
    if typ.startswith("application/") and "/" not in typ[len("application/"):]:
        return typ[len("application/"):]
    return typ


def verify(token, keyset, kind, leeway):
    header = jwt.get_unverified_header(token)
    key = keyset[header.get("kid")]
    decoded = jwt.decode_complete(
        token,
        key,
        algorithms=["EdDSA"],
        options={"require": REQUIRED[kind]},
        leeway=leeway,
    )
    typ = decoded["header"].get("typ")
    if not isinstance(typ, str) or bare_typ(typ) != TYP[kind]:
        raise jwt.InvalidTokenError(f"typ is {typ!r}, expected {TYP[kind]!r}")
    return decoded["header"], decoded["payload"]


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jwks", required=True)
    parser.add_argument("--kind", choices=sorted(TYP), default="permit")
    parser.add_argument("--leeway", type=int, default=0)
    parser.add_argument("tokens", nargs="+")
    args = parser.parse_args()

    with open(args.jwks, encoding="utf-8") as f:
        keyset = jwt.PyJWKSet.from_dict(json.load(f))

    for path in args.tokens:
        with open(path, encoding="utf-8") as f:
            token = f.read().strip()
        try:
            header, claims = verify(token, keyset, args.kind, args.leeway)
            result = {"file": path, "ok": True, "header": header, "claims": claims}
        except Exception as e:  # noqa: BLE001 - report every refusal by its class name
            result = {"file": path, "ok": False, "error": type(e).__name__, "message": str(e)}
        print(json.dumps(result, sort_keys=True))
    print(f"pyjwt {jwt.__version__}", file=sys.stderr)


if __name__ == "__main__":
    main()
