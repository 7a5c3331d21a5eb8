// Client JWTs: valid HS256 tokens and the broken ones the server must refuse.

import { randomBytes } from 'node:crypto';

import jwt from 'jsonwebtoken';

const nowSec = () => Math.floor(Date.now() / 1000);

/**
 * A valid HS256 token for `sub` with `role`, valid for an hour.
 * `claims` are merged last, so they can override or add anything (`name`, `exp`, ...).
 */
export function mintToken(secret, sub, role = 'client', claims = {}) {
  return jwt.sign({ sub, role, exp: nowSec() + 3600, ...claims }, secret, { algorithm: 'HS256', noTimestamp: false });
}

/** HS256-signed token with exactly `payload` (no `exp` added). */
export function signRaw(secret, payload) {
  return jwt.sign(payload, secret, { algorithm: 'HS256' });
}

const b64url = (value) => Buffer.from(typeof value === 'string' ? value : JSON.stringify(value)).toString('base64url');

/** An unsigned token (`alg: none`), crafted by hand as jsonwebtoken refuses to make one. */
export function algNoneToken(sub, role = 'client') {
  return `${b64url({ alg: 'none', typ: 'JWT' })}.${b64url({ sub, role, exp: nowSec() + 3600 })}.`;
}

/** A token whose signature was made with another secret. */
export function wrongSignatureToken(sub, role = 'client') {
  return mintToken(`not-the-secret-${randomBytes(8).toString('hex')}`, sub, role);
}

/** A correctly signed token whose payload was changed afterwards (signature no longer matches). */
export function tamperedToken(secret, sub, role = 'client') {
  const [header, , signature] = mintToken(secret, sub, role).split('.');
  return `${header}.${b64url({ sub, role: 'admin', exp: nowSec() + 3600 })}.${signature}`;
}

/** A token that expired ten minutes ago (far beyond any clock-skew leeway). */
export function expiredToken(secret, sub, role = 'client') {
  return mintToken(secret, sub, role, { exp: nowSec() - 600 });
}

/** A correctly signed token without `exp`. */
export function noExpToken(secret, sub, role = 'client') {
  return signRaw(secret, { sub, role });
}

/** A correctly signed token that is not valid yet (`nbf` an hour ahead). */
export function notYetValidToken(secret, sub, role = 'client') {
  return mintToken(secret, sub, role, { nbf: nowSec() + 3600, exp: nowSec() + 7200 });
}

/** A correctly signed token issued a year from now (`iat` in the future). */
export function issuedLaterToken(secret, sub, role = 'client') {
  return mintToken(secret, sub, role, { iat: nowSec() + 365 * 86400 });
}
