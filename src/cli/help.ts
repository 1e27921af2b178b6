/** The tool's top-level help text, kept out of main.ts so that start-up does not parse it. */

/** Printed by `kms-jwt --help`. */
export const toolHelp = `Usage: kms-jwt COMMAND [options]

Mint, verify and inspect Apple ES256 tokens with a P-256 key in a local .p8 file, AWS KMS,
Google Cloud KMS or a PKCS#11 HSM.

Commands:
  client-secret   Mint a Sign in with Apple client secret (short for "mint client-secret")
  mint KIND       Mint any Apple token kind; "kms-jwt mint --help" lists the kinds
  verify TOKEN    Check a token's signature and, optionally, its aud, iss and sub
  inspect TOKEN   Decode a token and list every rule of its kind that it breaks
  public-key      Print a key's public half (PEM or JWK) and its RFC 7638 thumbprint
  import          Import a .p8 key into AWS KMS, Cloud KMS or a PKCS#11 token

Key references (--key, --to):
  ./AuthKey_ABC123DEFG.p8, file:PATH   a local PKCS#8 or SEC1 file
  env:NAME                             a PEM key in an environment variable
  awskms:KEY-ID|ARN|alias/NAME         an AWS KMS key
  gcpkms:projects/.../cryptoKeyVersions/N   a Cloud KMS key version
  pkcs11:token=...;object=...?pin-source=...   a key in a PKCS#11 token

TOKEN "-" reads the token from stdin, which keeps it out of ps output and shell history.

Exit codes: 0 ok, 1 token invalid or problems found, 2 usage error, 3 key or backend error,
4 token fields rejected before signing, 5 other failure, 128+N import finished after signal N.

Run "kms-jwt COMMAND --help" for a command's options. Full guide: docs/cli.md.
`;
