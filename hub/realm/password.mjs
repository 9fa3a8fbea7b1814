// Password hashes of the local realm.
//
// Format (written by hub/realm/store.py with hashlib.scrypt, read here):
//   scrypt$<N>$<r>$<p>$<salt, standard base64>$<key, standard base64>
// with N=16384, r=8, p=1, a 16-byte salt and a 64-byte key for new hashes.

import * as crypto from 'node:crypto';
import { promisify } from 'node:util';

const scryptAsync = promisify(crypto.scrypt);

export const SCRYPT_N = 16384;
export const SCRYPT_R = 8;
export const SCRYPT_P = 1;
export const SALT_BYTES = 16;
export const KEY_BYTES = 64;

// Upper bounds on what a stored hash may ask for, so a tampered realm file cannot make
// one login burn gigabytes of memory.
const MAX_N = 1 << 20;
const MAX_R = 32;
const MAX_P = 16;

function scryptOptions(N, r, p) {
  // scrypt needs 128 * N * r bytes; leave headroom above it.
  return { N, r, p, maxmem: 256 * N * r + 1024 * 1024 };
}

/** Parse "scrypt$N$r$p$salt$hash"; undefined when malformed. */
export function parseHash(encoded) {
  if (typeof encoded !== 'string') return undefined;
  const parts = encoded.split('$');
  if (parts.length !== 6 || parts[0] !== 'scrypt') return undefined;
  const [N, r, p] = parts.slice(1, 4).map((v) => (/^[0-9]{1,8}$/.test(v) ? Number(v) : NaN));
  if (!Number.isInteger(N) || !Number.isInteger(r) || !Number.isInteger(p)) return undefined;
  // N must be a power of two above 1.
  if (N < 2 || N > MAX_N || (N & (N - 1)) !== 0) return undefined;
  if (r < 1 || r > MAX_R || p < 1 || p > MAX_P) return undefined;
  const b64 = /^[A-Za-z0-9+/]+={0,2}$/;
  if (!b64.test(parts[4]) || !b64.test(parts[5])) return undefined;
  const salt = Buffer.from(parts[4], 'base64');
  const key = Buffer.from(parts[5], 'base64');
  if (salt.length < 8 || key.length < 16 || key.length > 256) return undefined;
  return { N, r, p, salt, key };
}

/** Hash a password in the realm's format (async, off the event loop). */
export async function hashPassword(password) {
  const salt = crypto.randomBytes(SALT_BYTES);
  const key = await scryptAsync(
    Buffer.from(String(password), 'utf8'), salt, KEY_BYTES,
    scryptOptions(SCRYPT_N, SCRYPT_R, SCRYPT_P),
  );
  return `scrypt$${SCRYPT_N}$${SCRYPT_R}$${SCRYPT_P}$${salt.toString('base64')}$${key.toString('base64')}`;
}

/**
 * Does `password` match the stored hash? False for a malformed hash, never throws.
 * The comparison is constant-time (crypto.timingSafeEqual).
 */
export async function verifyPassword(password, encoded) {
  const parsed = parseHash(encoded);
  if (!parsed || typeof password !== 'string') return false;
  const { N, r, p, salt, key } = parsed;
  let derived;
  try {
    derived = await scryptAsync(Buffer.from(password, 'utf8'), salt, key.length, scryptOptions(N, r, p));
  } catch {
    return false;
  }
  return crypto.timingSafeEqual(derived, key);
}

/** Synchronous twin of verifyPassword, for scripts and tests; the server uses the async one. */
export function verifyPasswordSync(password, encoded) {
  const parsed = parseHash(encoded);
  if (!parsed || typeof password !== 'string') return false;
  const { N, r, p, salt, key } = parsed;
  let derived;
  try {
    derived = crypto.scryptSync(Buffer.from(password, 'utf8'), salt, key.length, scryptOptions(N, r, p));
  } catch {
    return false;
  }
  return crypto.timingSafeEqual(derived, key);
}

// A hash nobody's password matches, verified against when a username is unknown so that
// "no such user" takes as long as "wrong password".
export const DUMMY_HASH = `scrypt$${SCRYPT_N}$${SCRYPT_R}$${SCRYPT_P}$${crypto.randomBytes(SALT_BYTES).toString('base64')}$${crypto.randomBytes(KEY_BYTES).toString('base64')}`;
