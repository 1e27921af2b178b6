"""Mints a Sign in with Apple client secret with PyJWT, the peer of `kms-jwt client-secret` in
test/bench/cli.bench.mjs: read the .p8, sign the same header and claims with ES256, print the
token. Run it with Debian's /usr/bin/python3 (packages python3-jwt and python3-cryptography).

Usage: pyjwt_client_secret.py KEY_FILE TEAM_ID CLIENT_ID KEY_ID
"""
import sys
import time

import jwt


def main() -> None:
    key_file, team_id, client_id, key_id = sys.argv[1:5]
    with open(key_file, encoding="ascii") as handle:
        private_key = handle.read()
    # Same claims as the CLI: iat backdated 30 s for clock skew, a 180-day lifetime.
    iat = int(time.time()) - 30
    claims = {
        "iss": team_id,
        "iat": iat,
        "exp": iat + 180 * 86400,
        "aud": "https://appleid.apple.com",
        "sub": client_id,
    }
    # typ None keeps the header exactly {alg, kid}, as the CLI emits it.
    headers = {"kid": key_id, "typ": None}
    token = jwt.encode(claims, private_key, algorithm="ES256", headers=headers)
    sys.stdout.write(token + "\n")


main()
