/**
 * Cron schedules evaluated in an IANA time zone.
 *
 * Syntax: five fields (minute hour day-of-month month day-of-week) with `*`, `a`, `a-b`,
 * `*\/s`, `a-b/s`, `a/s` (a to the field's maximum) and comma lists; month names JAN-DEC and
 * day names SUN-SAT (case-insensitive, also inside ranges); day-of-week 7 is Sunday; and the
 * descriptors @yearly (@annually), @monthly, @weekly, @daily (@midnight) and @hourly.
 *
 * Day matching follows cron: when both day-of-month and day-of-week are restricted (neither
 * field starts with `*`), a day matches if EITHER matches; otherwise both must match.
 *
 * Daylight-saving rule: a schedule matches wall-clock times, and each wall-clock time fires at
 * most once.
 * - A wall-clock time that does not exist (skipped by spring-forward) fires at the first instant
 *   after the gap (the moment the clocks jumped). Several skipped times fire there once.
 * - A wall-clock time that occurs twice (the repeated hour of fall-back) fires at its first
 *   occurrence only.
 */
import { DAY_NAMES, MONTH_NAMES, SCHEDULE_MACROS, type ScheduleMacro } from '../api/formats.js';
import { resolveLocal, toLocal, validateTimeZone } from './timezone.js';

export class CronError extends Error {
  constructor(
    readonly expression: string,
    reason: string,
  ) {
    super(`invalid schedule "${expression}": ${reason}`);
    this.name = 'CronError';
  }
}

interface FieldSpec {
  name: string;
  min: number;
  max: number;
  names?: readonly string[];
  /** Index in `names` of the value `min`. */
  namesOffset?: number;
}

const FIELDS: readonly FieldSpec[] = [
  { name: 'minute', min: 0, max: 59 },
  { name: 'hour', min: 0, max: 23 },
  { name: 'day of month', min: 1, max: 31 },
  { name: 'month', min: 1, max: 12, names: MONTH_NAMES, namesOffset: 1 },
  { name: 'day of week', min: 0, max: 7, names: DAY_NAMES, namesOffset: 0 },
];

const DESCRIPTORS: Record<ScheduleMacro, string> = {
  '@yearly': '0 0 1 1 *',
  '@annually': '0 0 1 1 *',
  '@monthly': '0 0 1 * *',
  '@weekly': '0 0 * * 0',
  '@daily': '0 0 * * *',
  '@midnight': '0 0 * * *',
  '@hourly': '0 * * * *',
};

export interface CronSchedule {
  readonly expression: string;
  readonly minutes: ReadonlySet<number>;
  readonly hours: ReadonlySet<number>;
  readonly daysOfMonth: ReadonlySet<number>;
  readonly months: ReadonlySet<number>;
  /** 0 = Sunday ... 6 = Saturday (7 is folded into 0). */
  readonly daysOfWeek: ReadonlySet<number>;
  readonly domRestricted: boolean;
  readonly dowRestricted: boolean;
}

function parseValue(token: string, field: FieldSpec, expression: string): number {
  if (/^\d+$/.test(token)) {
    const value = Number(token);
    if (value < field.min || value > field.max) {
      throw new CronError(
        expression,
        `${field.name} value ${value} is out of range ${field.min}-${field.max}`,
      );
    }
    return value;
  }
  const index = field.names?.indexOf(token.toUpperCase() as never) ?? -1;
  if (index < 0) {
    const hint = field.names ? ` (names: ${field.names.join(', ')})` : '';
    throw new CronError(expression, `${field.name} value "${token}" is not a number${hint}`);
  }
  return index + (field.namesOffset ?? 0);
}

function parseField(text: string, field: FieldSpec, expression: string): Set<number> {
  const values = new Set<number>();
  for (const item of text.split(',')) {
    if (item === '') throw new CronError(expression, `empty item in ${field.name} field "${text}"`);
    const [range, stepText, extra] = item.split('/');
    if (extra !== undefined || range === undefined || range === '') {
      throw new CronError(expression, `malformed ${field.name} item "${item}"`);
    }
    let step = 1;
    if (stepText !== undefined) {
      if (!/^\d+$/.test(stepText) || Number(stepText) === 0) {
        throw new CronError(
          expression,
          `${field.name} step "${stepText}" must be a positive integer`,
        );
      }
      step = Number(stepText);
    }
    let low: number;
    let high: number;
    if (range === '*') {
      low = field.min;
      high = field.max;
    } else {
      const bounds = range.split('-');
      if (bounds.length > 2 || bounds.some((b) => b === '')) {
        throw new CronError(expression, `malformed ${field.name} range "${range}"`);
      }
      low = parseValue(bounds[0]!, field, expression);
      high = bounds.length === 2 ? parseValue(bounds[1]!, field, expression) : low;
      // `a/s` means from a to the end of the field, as in most cron implementations.
      if (bounds.length === 1 && stepText !== undefined) high = field.max;
      if (high < low) {
        throw new CronError(
          expression,
          `${field.name} range "${range}" runs backwards (${low} > ${high})`,
        );
      }
    }
    for (let v = low; v <= high; v += step) values.add(v);
  }
  return values;
}

const DAYS_IN_MONTH_MAX = [31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31];

const isMacro = (text: string): text is ScheduleMacro =>
  (SCHEDULE_MACROS as readonly string[]).includes(text);

export function parseCron(expression: string): CronSchedule {
  const trimmed = expression.trim();
  if (trimmed === '') throw new CronError(expression, 'the schedule is empty');
  let text = trimmed;
  if (trimmed.startsWith('@')) {
    const descriptor = trimmed.toLowerCase();
    if (!isMacro(descriptor)) {
      throw new CronError(
        expression,
        `unknown descriptor "${trimmed}" (supported: ${SCHEDULE_MACROS.join(', ')})`,
      );
    }
    text = DESCRIPTORS[descriptor];
  }
  const parts = text.split(/\s+/);
  if (parts.length !== 5) {
    throw new CronError(
      expression,
      `expected 5 fields (minute hour day-of-month month day-of-week), got ${parts.length}`,
    );
  }
  const [minutes, hours, daysOfMonth, months, rawDaysOfWeek] = parts.map((p, i) =>
    parseField(p, FIELDS[i]!, expression),
  ) as [Set<number>, Set<number>, Set<number>, Set<number>, Set<number>];
  const daysOfWeek = new Set([...rawDaysOfWeek].map((d) => d % 7));
  const schedule: CronSchedule = {
    expression: trimmed,
    minutes,
    hours,
    daysOfMonth,
    months,
    daysOfWeek,
    domRestricted: !parts[2]!.startsWith('*'),
    dowRestricted: !parts[4]!.startsWith('*'),
  };
  if (!canEverFire(schedule)) {
    throw new CronError(
      expression,
      'it never fires (no selected month has the selected day of month)',
    );
  }
  return schedule;
}

function canEverFire(s: CronSchedule): boolean {
  // Every month contains every weekday, so only a day-of-month-only rule can be impossible.
  if (s.dowRestricted) return true;
  const smallestDay = Math.min(...s.daysOfMonth);
  return [...s.months].some((m) => DAYS_IN_MONTH_MAX[m - 1]! >= smallestDay);
}

function dayMatches(s: CronSchedule, local: Date): boolean {
  const dom = s.daysOfMonth.has(local.getUTCDate());
  const dow = s.daysOfWeek.has(local.getUTCDay());
  if (s.domRestricted && s.dowRestricted) return dom || dow;
  return dom && dow;
}

const MINUTE_MS = 60_000;
/** Feb 29 on a Monday-only OR rule aside, any satisfiable schedule fires within 8 years. */
const SEARCH_YEARS = 9;

/** The first wall-clock time strictly after `local` that the schedule matches. */
export function nextLocalMatch(s: CronSchedule, local: Date): Date {
  const t = new Date(Math.floor(local.getTime() / MINUTE_MS) * MINUTE_MS + MINUTE_MS);
  const limit = t.getUTCFullYear() + SEARCH_YEARS;
  while (t.getUTCFullYear() <= limit) {
    if (!s.months.has(t.getUTCMonth() + 1)) {
      t.setUTCMonth(t.getUTCMonth() + 1, 1);
      t.setUTCHours(0, 0, 0, 0);
      continue;
    }
    if (!dayMatches(s, t)) {
      t.setUTCDate(t.getUTCDate() + 1);
      t.setUTCHours(0, 0, 0, 0);
      continue;
    }
    if (!s.hours.has(t.getUTCHours())) {
      t.setUTCHours(t.getUTCHours() + 1, 0, 0, 0);
      continue;
    }
    if (!s.minutes.has(t.getUTCMinutes())) {
      t.setUTCMinutes(t.getUTCMinutes() + 1, 0, 0);
      continue;
    }
    return t;
  }
  throw new CronError(s.expression, `no match within ${SEARCH_YEARS} years`);
}

/**
 * The first fire instant strictly after `after`, under the daylight-saving rule above.
 * Fire instants are non-decreasing in wall-clock order and the wall-clock reading of `after`
 * itself fires no later than `after`, so scanning forward from that reading and keeping the
 * first match that lands later is exact (in a repeated hour, matches that resolve to the
 * first occurrence are passed over).
 */
export function nextFireTime(s: CronSchedule, timeZone: string, after: Date): Date {
  validateTimeZone(timeZone);
  let local = toLocal(after, timeZone);
  for (;;) {
    local = nextLocalMatch(s, local);
    const fire = resolveLocal(local, timeZone).instant;
    if (fire.getTime() > after.getTime()) return fire;
  }
}

/**
 * The last fire instant at or before `atOrBefore`, or undefined when there is none within the
 * search horizon. Mirrors nextFireTime: wall-clock readings up to a few hours past that of
 * `atOrBefore` may still fire before it (the repeated hour), so the backward scan starts there.
 */
export function previousFireTime(
  s: CronSchedule,
  timeZone: string,
  atOrBefore: Date,
): Date | undefined {
  validateTimeZone(timeZone);
  const limit = toLocal(atOrBefore, timeZone).getUTCFullYear() - SEARCH_YEARS;
  let local = new Date(toLocal(atOrBefore, timeZone).getTime() + MAX_ZONE_SHIFT_MS + MINUTE_MS);
  for (;;) {
    const match = previousLocalMatch(s, local, limit);
    if (!match) return undefined;
    const fire = resolveLocal(match, timeZone).instant;
    if (fire.getTime() <= atOrBefore.getTime()) return fire;
    local = match;
  }
}

/** No zone moves its clocks by more than this in one step. */
const MAX_ZONE_SHIFT_MS = 3 * 3_600_000;

/** The last wall-clock time strictly before `local` that the schedule matches. */
function previousLocalMatch(s: CronSchedule, local: Date, limitYear: number): Date | undefined {
  const t = new Date(Math.ceil(local.getTime() / MINUTE_MS) * MINUTE_MS - MINUTE_MS);
  while (t.getUTCFullYear() >= limitYear) {
    if (!s.months.has(t.getUTCMonth() + 1)) {
      t.setUTCDate(1);
      t.setUTCHours(0, -1, 0, 0);
      continue;
    }
    if (!dayMatches(s, t)) {
      t.setUTCHours(0, -1, 0, 0);
      continue;
    }
    if (!s.hours.has(t.getUTCHours())) {
      t.setUTCMinutes(-1, 0, 0);
      continue;
    }
    if (!s.minutes.has(t.getUTCMinutes())) {
      t.setUTCMinutes(t.getUTCMinutes() - 1, 0, 0);
      continue;
    }
    return t;
  }
  return undefined;
}

/** Fire instants in (from, to], oldest first, at most `limit` of them. */
export function fireTimesBetween(
  s: CronSchedule,
  timeZone: string,
  from: Date,
  to: Date,
  limit = Number.POSITIVE_INFINITY,
): Date[] {
  const out: Date[] = [];
  let cursor = from;
  while (out.length < limit) {
    const next = nextFireTime(s, timeZone, cursor);
    if (next.getTime() > to.getTime()) break;
    out.push(next);
    cursor = next;
  }
  return out;
}
