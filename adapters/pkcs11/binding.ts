/**
 * The narrow part of the pkcs11js binding that this adapter calls, and the PKCS#11 constants it
 * uses. The constants are fixed by the PKCS#11 v2.40 base specification (pkcs11t.h), so they are
 * defined here and need no native code to read. pkcs11js itself is an optional peer dependency,
 * loaded on first use through `loadPeer`.
 */
import { endianness } from 'node:os';
import { loadPeer } from '../../src/peer.js';

/** A slot, session or object handle: pkcs11js passes each CK_ULONG handle as a Buffer. */
export type Handle = Buffer;

/** One attribute of a template; `value` is omitted when reading. */
export interface Attribute {
  type: number;
  value?: number | boolean | string | Buffer;
}

/** The fields of CK_TOKEN_INFO that this adapter reads, space-padded as the module returns them. */
export interface TokenInfo {
  label: string;
  manufacturerID: string;
  model: string;
  serialNumber: string;
  flags: number;
}

/** The fields of CK_SLOT_INFO that this adapter reads. */
export interface SlotInfo {
  slotDescription: string;
  manufacturerID: string;
}

/** The fields of CK_INFO that this adapter reads. */
export interface ModuleInfo {
  manufacturerID: string;
  libraryDescription: string;
  libraryVersion: { major: number; minor: number };
}

/**
 * The PKCS#11 calls this adapter makes. `C_SignAsync` runs `C_Sign` on the libuv thread pool, so
 * the event loop keeps running while the module computes the signature.
 */
export interface Pkcs11Binding {
  load(path: string): void;
  close(): void;
  C_Initialize(options?: { flags?: number }): void;
  C_Finalize(): void;
  C_GetInfo(): ModuleInfo;
  C_GetSlotList(tokenPresent?: boolean): Handle[];
  C_GetSlotInfo(slot: Handle): SlotInfo;
  C_GetTokenInfo(slot: Handle): TokenInfo;
  C_OpenSession(slot: Handle, flags: number): Handle;
  C_CloseSession(session: Handle): void;
  C_Login(session: Handle, userType: number, pin?: string): void;
  C_FindObjectsInit(session: Handle, template: Attribute[]): void;
  C_FindObjects(session: Handle, maxObjectCount: number): Handle[];
  C_FindObjectsFinal(session: Handle): void;
  C_GetAttributeValue(session: Handle, object: Handle, template: Attribute[]): Attribute[];
  C_CreateObject(session: Handle, template: Attribute[]): Handle;
  C_DestroyObject(session: Handle, object: Handle): void;
  C_SignInit(session: Handle, mechanism: { mechanism: number }, key: Handle): void;
  C_SignAsync(session: Handle, data: Buffer, signature: Buffer): Promise<Buffer>;
}

/** The pkcs11js module exports this adapter uses. */
export interface Pkcs11Module {
  PKCS11: new () => Pkcs11Binding;
}

/** Loads pkcs11js, or raises `ERR_PEER_MISSING` naming the package to install. */
export async function loadPkcs11Module(): Promise<Pkcs11Module> {
  const loaded = await loadPeer('pkcs11js', () => import('pkcs11js'));
  const namespace = loaded as unknown as { default?: Pkcs11Module } & Pkcs11Module;
  // pkcs11js is CommonJS: an ESM import puts module.exports on `default`.
  return namespace.default ?? namespace;
}

// Object classes, key types and attributes (PKCS#11 v2.40 §4, pkcs11t.h).
export const CKO_PUBLIC_KEY = 0x02;
export const CKO_PRIVATE_KEY = 0x03;
export const CKK_RSA = 0x00;
export const CKK_DSA = 0x01;
export const CKK_DH = 0x02;
export const CKK_EC = 0x03;
export const CKA_CLASS = 0x00;
export const CKA_TOKEN = 0x01;
export const CKA_PRIVATE = 0x02;
export const CKA_LABEL = 0x03;
export const CKA_VALUE = 0x11;
export const CKA_KEY_TYPE = 0x100;
export const CKA_ID = 0x102;
export const CKA_SENSITIVE = 0x103;
export const CKA_SIGN = 0x108;
export const CKA_VERIFY = 0x10a;
export const CKA_DERIVE = 0x10c;
export const CKA_EXTRACTABLE = 0x162;
export const CKA_EC_PARAMS = 0x180;
export const CKA_EC_POINT = 0x181;

// Sessions, users, flags and mechanisms.
export const CKF_RW_SESSION = 0x02;
export const CKF_SERIAL_SESSION = 0x04;
export const CKF_OS_LOCKING_OK = 0x02;
export const CKF_TOKEN_INITIALIZED = 0x400;
export const CKF_USER_PIN_COUNT_LOW = 0x10000;
export const CKF_USER_PIN_FINAL_TRY = 0x20000;
export const CKF_USER_PIN_LOCKED = 0x40000;
export const CKU_USER = 1;
export const CKM_ECDSA = 0x1041;

// Return values (pkcs11t.h) that this adapter treats specially.
export const CKR_GENERAL_ERROR = 0x05;
export const CKR_DEVICE_ERROR = 0x30;
export const CKR_DEVICE_MEMORY = 0x31;
export const CKR_DEVICE_REMOVED = 0x32;
export const CKR_KEY_HANDLE_INVALID = 0x60;
export const CKR_KEY_FUNCTION_NOT_PERMITTED = 0x68;
export const CKR_OBJECT_HANDLE_INVALID = 0x82;
export const CKR_OPERATION_ACTIVE = 0x90;
export const CKR_PIN_INCORRECT = 0xa0;
export const CKR_PIN_INVALID = 0xa1;
export const CKR_PIN_LEN_RANGE = 0xa2;
export const CKR_PIN_EXPIRED = 0xa3;
export const CKR_PIN_LOCKED = 0xa4;
export const CKR_SESSION_CLOSED = 0xb0;
export const CKR_SESSION_HANDLE_INVALID = 0xb3;
export const CKR_TOKEN_NOT_PRESENT = 0xe0;
export const CKR_USER_ALREADY_LOGGED_IN = 0x100;
export const CKR_USER_NOT_LOGGED_IN = 0x101;
export const CKR_USER_PIN_NOT_INITIALIZED = 0x102;
export const CKR_CRYPTOKI_ALREADY_INITIALIZED = 0x191;

// The message of a plain Error raised by the native code: `CKR_NAME:VALUE`, then a stack.
const rawErrorPattern = /^(CKR_[A-Z0-9_]+):([0-9]+)/;

/**
 * Returns the CK_RV of a failed binding call, or undefined for any other error. Most pkcs11js
 * calls raise a `Pkcs11Error` with a numeric `code`, but `C_FindObjects` with a count raises a
 * plain Error whose message is `CKR_NAME:VALUE`, so both forms are read.
 */
export function returnValueOf(error: unknown): number | undefined {
  if (!(error instanceof Error)) return undefined;
  const code = (error as { code?: unknown }).code;
  if (error.name === 'Pkcs11Error' && typeof code === 'number') return code;
  const match = rawErrorPattern.exec(error.message);
  return match ? Number(match[2]) : undefined;
}

/** Returns the CKR_ name of a failed binding call, or the value in hex. */
export function returnValueName(error: unknown): string {
  const value = returnValueOf(error);
  if (value === undefined) return error instanceof Error ? error.name : 'unknown error';
  const message = (error as Error).message;
  const name = /^CKR_[A-Z0-9_]+$/.exec(message)?.[0] ?? rawErrorPattern.exec(message)?.[1];
  return name ?? `CK_RV 0x${value.toString(16)}`;
}

/** Reads a CK_ULONG attribute value, which the module returns in native byte order and width. */
export function readUlong(value: Buffer): number {
  const little = endianness() === 'LE';
  if (value.length === 4) return little ? value.readUInt32LE(0) : value.readUInt32BE(0);
  if (value.length === 8)
    return Number(little ? value.readBigUInt64LE(0) : value.readBigUInt64BE(0));
  throw new TypeError(`A CK_ULONG attribute has ${value.length} bytes; expected 4 or 8.`);
}
