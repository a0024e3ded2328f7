/**
 * Byte quantities as Kubernetes writes them ("10Gi", "500M", "1.5Gi", "2e9"), converted to and
 * from byte counts. Only what storage sizes need: no milli-units survive (a fractional byte
 * rounds up, as resource.Quantity.Value() does).
 */

const BINARY_EXPONENT: Record<string, number> = { Ki: 10, Mi: 20, Gi: 30, Ti: 40, Pi: 50, Ei: 60 };
const DECIMAL_EXPONENT: Record<string, number> = {
  n: -9,
  u: -6,
  m: -3,
  '': 0,
  k: 3,
  M: 6,
  G: 9,
  T: 12,
  P: 15,
  E: 18,
};

const QUANTITY = /^(\+)?(\d*)(?:\.(\d*))?(?:[eE]([+-]?\d+)|(Ki|Mi|Gi|Ti|Pi|Ei|[numkMGTPE]))?$/;

/**
 * The byte count of a quantity, rounded up; throws on anything that is not a non-negative
 * quantity. Computed on integers so that "1.5Gi" is exact.
 */
export function parseQuantity(quantity: string | number): number {
  if (typeof quantity === 'number') return Math.ceil(quantity);
  const text = quantity.trim();
  const match = QUANTITY.exec(text);
  if (!match || (!match[2] && !match[3])) {
    throw new Error(`"${quantity}" is not a quantity (e.g. 10Gi, 500M, 1073741824)`);
  }
  const [, , whole = '', fraction = '', exponent, suffix = ''] = match;
  let numerator = BigInt(whole + fraction || '0');
  let denominator = 10n ** BigInt(fraction.length);
  if (suffix in BINARY_EXPONENT) {
    numerator <<= BigInt(BINARY_EXPONENT[suffix]!);
  } else {
    const power = exponent !== undefined ? Number(exponent) : DECIMAL_EXPONENT[suffix]!;
    if (power >= 0) numerator *= 10n ** BigInt(power);
    else denominator *= 10n ** BigInt(-power);
  }
  const bytes = (numerator + denominator - 1n) / denominator;
  if (bytes > BigInt(Number.MAX_SAFE_INTEGER)) {
    throw new Error(`"${quantity}" is too large a byte count`);
  }
  return Number(bytes);
}

/**
 * The canonical form the API server would print for a byte count: the largest binary suffix
 * that divides it exactly, else the plain number (as resource.NewQuantity(n, BinarySI)).
 */
export function formatBytes(bytes: number): string {
  if (!Number.isSafeInteger(bytes) || bytes < 0) {
    throw new Error(`${bytes} is not a byte count`);
  }
  if (bytes === 0) return '0';
  for (const suffix of ['Pi', 'Ti', 'Gi', 'Mi', 'Ki']) {
    const unit = 2 ** BINARY_EXPONENT[suffix]!;
    if (bytes >= unit && bytes % unit === 0) return `${bytes / unit}${suffix}`;
  }
  return String(bytes);
}

/**
 * A Kubernetes quantity (`20Gi`, `500M`, `1e9`, `1.5Ti`) as resource.ParseQuantity reads it,
 * in the canonical form: sign, digits with an optional fraction, then a binary suffix, a
 * decimal suffix or a decimal exponent.
 */
export const QUANTITY_PATTERN =
  '^[+-]?([0-9]+([.][0-9]*)?|[.][0-9]+)([KMGTPE]i|[numkMGTPE]|[eE][+-]?[0-9]+)?$';
export const QUANTITY_MAX_LENGTH = 64;

/** Whether a quantity in QUANTITY_PATTERN form is greater than zero. */
export function isPositiveQuantity(text: string): boolean {
  if (!new RegExp(QUANTITY_PATTERN).test(text) || text.startsWith('-')) return false;
  const mantissa = /^[+]?([0-9.]*)/.exec(text)![1]!;
  return /[1-9]/.test(mantissa);
}
