/**
 * ECS ClientTokens derived from CSI names, so a repeated create (a retry after a timeout, a
 * restarted driver, the CO polling for readiness) returns the resource made the first time
 * instead of making another. ECS accepts at most 64 ASCII characters: a short printable name
 * is used as is (`n:` + name, readable in the ECS console); any other is hashed (`h:` +
 * base64 of its 128-bit FNV-1a hash), the scheme the upstream Alibaba Cloud driver uses.
 */

const FNV128_OFFSET = 0x6c62272e07bb014262b821756295c58dn;
const FNV128_PRIME = 0x0000000001000000000000000000013bn;
const MASK128 = (1n << 128n) - 1n;

export function fnv1a128(data: Uint8Array): Buffer {
  let hash = FNV128_OFFSET;
  for (const byte of data) {
    hash ^= BigInt(byte);
    hash = (hash * FNV128_PRIME) & MASK128;
  }
  return Buffer.from(hash.toString(16).padStart(32, '0'), 'hex');
}

export function clientToken(name: string): string {
  if (name.length <= 62 && /^[\x21-\x7e]+$/.test(name)) return `n:${name}`;
  return `h:${fnv1a128(Buffer.from(name, 'utf8')).toString('base64')}`;
}
