/**
 * String formats of the API, each written once as a regular expression that both JavaScript
 * and the API server (RE2, in OpenAPI `pattern` and in CEL `matches`) read the same way.
 * Expressions that CEL evaluates avoid backslashes and quotes so they can sit inside a CEL
 * string literal unchanged.
 */

/** A DNS-1123 subdomain: the name of most Kubernetes objects, PVCs and snapshots included. */
export const OBJECT_NAME_PATTERN =
  '^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$';
export const OBJECT_NAME_MAX_LENGTH = 253;

/** A CSI driver name: domain-name notation, at most 63 characters (CSI spec, GetPluginInfo). */
export const CSI_DRIVER_NAME_PATTERN = '^[a-zA-Z0-9]([-a-zA-Z0-9.]*[a-zA-Z0-9])?$';
export const CSI_DRIVER_NAME_MAX_LENGTH = 63;

/** A label key: an optional DNS subdomain prefix and `/`, then a name of at most 63 characters. */
export const LABEL_KEY_PATTERN =
  '^([a-z0-9]([-a-z0-9]*[a-z0-9])?([.][a-z0-9]([-a-z0-9]*[a-z0-9])?)*/)?[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?$';
export const LABEL_KEY_MAX_LENGTH = 317;

/** A label value: empty, or at most 63 characters that start and end alphanumeric. */
export const LABEL_VALUE_PATTERN = '^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$';
export const LABEL_VALUE_MAX_LENGTH = 63;

/** An IANA time-zone name such as `UTC`, `Europe/Berlin` or `America/Argentina/Salta`. */
export const TIME_ZONE_PATTERN = '^[A-Za-z][-A-Za-z0-9_+]*(/[-A-Za-z0-9_+]+)*$';
export const TIME_ZONE_MAX_LENGTH = 64;

/** The schedule macros the API accepts besides 5-field cron expressions (as CronJob does). */
export const SCHEDULE_MACROS = [
  '@yearly',
  '@annually',
  '@monthly',
  '@weekly',
  '@daily',
  '@midnight',
  '@hourly',
] as const;
export type ScheduleMacro = (typeof SCHEDULE_MACROS)[number];

/** Month names a schedule may use instead of 1-12 (any case). */
export const MONTH_NAMES = [
  'JAN',
  'FEB',
  'MAR',
  'APR',
  'MAY',
  'JUN',
  'JUL',
  'AUG',
  'SEP',
  'OCT',
  'NOV',
  'DEC',
] as const;
/** Day names a schedule may use instead of 0-6 (any case); 7 is Sunday too. */
export const DAY_NAMES = ['SUN', 'MON', 'TUE', 'WED', 'THU', 'FRI', 'SAT'] as const;

/** One cron field: a comma list of `*` or values or ranges, each with an optional `/step`. */
function cronField(value: string): string {
  const term = `([*]|(${value})(-(${value}))?)(/[1-9][0-9]*)?`;
  return `${term}(,${term})*`;
}

/** Alternatives matching each name in any case (the pattern has no case-insensitive flag). */
const anyCase = (names: readonly string[]): string =>
  names
    .map((name) => [...name].map((c) => `[${c.toUpperCase()}${c.toLowerCase()}]`).join(''))
    .join('|');

/**
 * A schedule: a 5-field cron expression (minute hour day-of-month month day-of-week; months
 * 1-12 or JAN-DEC, days 0-7 or SUN-SAT, Sunday is 0 or 7) or one of the macros.
 */
export const CRON_PATTERN = `^(${SCHEDULE_MACROS.join('|')}|${[
  cronField('[0-5]?[0-9]'),
  cronField('[01]?[0-9]|2[0-3]'),
  cronField('0?[1-9]|[12][0-9]|3[01]'),
  cronField(`0?[1-9]|1[0-2]|${anyCase(MONTH_NAMES)}`),
  cronField(`[0-7]|${anyCase(DAY_NAMES)}`),
].join(' +')})$`;
export const SCHEDULE_MAX_LENGTH = 200;

/** An RFC 3339 time with seconds and an explicit offset, e.g. `2025-06-01T02:00:00Z`. */
export const RFC3339_PATTERN =
  '^[0-9]{4}-(0[1-9]|1[0-2])-(0[1-9]|[12][0-9]|3[01])T([01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9]([.][0-9]+)?(Z|[+-]([01][0-9]|2[0-3]):[0-5][0-9])$';

/** A duration as a sum of whole units: `s`, `m`, `h`, `d` (24h) and `w` (7d), e.g. `1w3d12h`. */
export const DURATION_PATTERN = '^([0-9]+[smhdw])+$';
/** Matches a duration (in DURATION_PATTERN form) that is not zero. */
export const NONZERO_PATTERN = '[1-9]';
export const DURATION_MAX_LENGTH = 64;
