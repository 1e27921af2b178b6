/** An AWS KMS error as AWS JSON 1.1 carries it: `__type`, `message` and an HTTP status. */
export class KmsServiceError extends Error {
  constructor(
    readonly type: string,
    message: string,
    readonly status = 400,
  ) {
    super(message);
  }
}
