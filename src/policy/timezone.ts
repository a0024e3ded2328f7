/**
 * IANA time zones through the runtime's ICU data (Intl), so no time-zone package is needed.
 *
 * A "local time" here is a wall-clock reading in a zone, carried as a Date whose UTC fields
 * hold the wall-clock fields (a naive calendar value). Instants are ordinary Dates.
 */

export class TimeZoneError extends Error {
  constructor(readonly timeZone: string) {
    super(
      `unknown time zone "${timeZone}": use an IANA name such as "UTC", "Europe/Berlin" or ` +
        `"America/New_York"`,
    );
    this.name = 'TimeZoneError';
  }
}

export interface LocalParts {
  year: number;
  /** 1-12 */
  month: number;
  /** 1-31 */
  day: number;
  /** 0-23 */
  hour: number;
  minute: number;
  second: number;
  /** 0 = Sunday ... 6 = Saturday */
  weekday: number;
}

const DAY_MS = 86_400_000;

const formatters = new Map<string, Intl.DateTimeFormat>();

function formatterFor(timeZone: string): Intl.DateTimeFormat {
  let formatter = formatters.get(timeZone);
  if (!formatter) {
    try {
      formatter = new Intl.DateTimeFormat('en-US', {
        timeZone,
        hourCycle: 'h23',
        year: 'numeric',
        month: 'numeric',
        day: 'numeric',
        hour: 'numeric',
        minute: 'numeric',
        second: 'numeric',
        era: 'short',
      });
    } catch {
      throw new TimeZoneError(timeZone);
    }
    formatters.set(timeZone, formatter);
  }
  return formatter;
}

/**
 * Throws a TimeZoneError naming the zone when it is not one the runtime knows.
 * Offsets such as "+02:00" are refused: they carry no DST rules, which is what users pick a
 * zone for.
 */
export function validateTimeZone(timeZone: string): void {
  if (timeZone.trim() === '' || /^[+-]/.test(timeZone)) throw new TimeZoneError(timeZone);
  formatterFor(timeZone);
}

export function isValidTimeZone(timeZone: string): boolean {
  try {
    validateTimeZone(timeZone);
    return true;
  } catch {
    return false;
  }
}

/** Wall-clock fields of an instant in a zone. */
export function localParts(instant: Date | number, timeZone: string): LocalParts {
  const ms = typeof instant === 'number' ? instant : instant.getTime();
  const fields: Record<string, string> = {};
  for (const part of formatterFor(timeZone).formatToParts(ms)) fields[part.type] = part.value;
  let year = Number(fields.year);
  // Years before 1 CE come back as positive numbers with era "BC".
  if (fields.era === 'BC' || fields.era === 'B') year = 1 - year;
  const month = Number(fields.month);
  const day = Number(fields.day);
  const hour = Number(fields.hour) % 24;
  const minute = Number(fields.minute);
  const second = Number(fields.second);
  const weekday = new Date(Date.UTC(year, month - 1, day)).getUTCDay();
  return { year, month, day, hour, minute, second, weekday };
}

/** The zone's UTC offset at an instant, in milliseconds (east of Greenwich is positive). */
export function offsetAt(instant: number, timeZone: string): number {
  const day = offsetsOfDay(Math.floor(instant / DAY_MS), timeZone);
  return day.transition === undefined || instant < day.transition ? day.start : day.end;
}

/**
 * Offsets over one UTC day: at its start, at its end, and the instant of the change between
 * them if any. Schedules and retention ask about many instants in the same days; asking ICU
 * once or twice per day instead of once per instant makes a year of hourly runs cheap. This
 * assumes no zone changes its offset twice within one UTC day, which tzdata never does.
 */
interface DayOffsets {
  start: number;
  end: number;
  transition?: number;
}

const DAY_CACHE_LIMIT = 100_000;
const dayCache = new Map<string, Map<number, DayOffsets>>();

function offsetsOfDay(day: number, timeZone: string): DayOffsets {
  let zoneDays = dayCache.get(timeZone);
  if (!zoneDays) {
    zoneDays = new Map();
    dayCache.set(timeZone, zoneDays);
  }
  const cached = zoneDays.get(day);
  if (cached) return cached;
  const first = day * DAY_MS;
  const last = first + DAY_MS - 1000;
  const start = exactOffset(first, timeZone);
  const end = exactOffset(last, timeZone);
  const offsets: DayOffsets = { start, end };
  if (start !== end) {
    let low = first; // offset === start
    let high = last; // offset !== start
    while (high - low > 1000) {
      const mid = low + Math.floor((high - low) / 2000) * 1000;
      if (exactOffset(mid, timeZone) === start) low = mid;
      else high = mid;
    }
    offsets.transition = high;
  }
  if (zoneDays.size >= DAY_CACHE_LIMIT) zoneDays.clear();
  zoneDays.set(day, offsets);
  return offsets;
}

function exactOffset(wholeSecond: number, timeZone: string): number {
  return naiveUtc(localParts(wholeSecond, timeZone)) - wholeSecond;
}

function naiveUtc(p: Omit<LocalParts, 'weekday'>): number {
  const d = new Date(0);
  d.setUTCFullYear(p.year, p.month - 1, p.day);
  d.setUTCHours(p.hour, p.minute, p.second, 0);
  return d.getTime();
}

/** The instant's wall-clock reading in the zone, as a naive calendar value. */
export function toLocal(instant: Date | number, timeZone: string): Date {
  const ms = typeof instant === 'number' ? instant : instant.getTime();
  return new Date(ms + offsetAt(ms, timeZone));
}

/**
 * How a wall-clock reading maps back to instants:
 * - `exact`: it occurs once;
 * - `repeated`: it occurs twice (a fall-back hour) — `instant` is the first occurrence;
 * - `skipped`: it never occurs (a spring-forward gap) — `instant` is the first instant after
 *   the gap, i.e. the moment the clocks jumped.
 */
export interface LocalResolution {
  kind: 'exact' | 'repeated' | 'skipped';
  instant: Date;
}

export function resolveLocal(local: Date, timeZone: string): LocalResolution {
  const wall = local.getTime();
  // Offsets a day either side bracket any single transition near this wall time.
  const before = offsetAt(wall - DAY_MS, timeZone);
  const after = offsetAt(wall + DAY_MS, timeZone);
  const candidates = [...new Set([wall - before, wall - after])]
    .filter((t) => t + offsetAt(t, timeZone) === wall)
    .sort((a, b) => a - b);
  if (candidates.length === 0) {
    // Inside a gap: wall - after lies before the transition, wall - before after it.
    return {
      kind: 'skipped',
      instant: new Date(transitionBetween(wall - after, wall - before, timeZone)),
    };
  }
  return {
    kind: candidates.length > 1 ? 'repeated' : 'exact',
    instant: new Date(candidates[0]!),
  };
}

/** The first instant in (lo, hi] whose offset differs from the offset at lo. */
function transitionBetween(lo: number, hi: number, timeZone: string): number {
  const start = offsetAt(lo, timeZone);
  let low = lo;
  let high = hi;
  while (high - low > 1000) {
    const mid = low + Math.floor((high - low) / 2000) * 1000;
    if (offsetAt(mid, timeZone) === start) low = mid;
    else high = mid;
  }
  return high;
}
