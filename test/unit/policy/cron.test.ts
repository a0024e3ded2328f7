import { expect } from 'chai';

import { CRON_PATTERN, DAY_NAMES, MONTH_NAMES, SCHEDULE_MACROS } from '../../../src/api/formats.js';
import type { CronSchedule } from '../../../src/policy/cron.js';
import {
  CronError,
  fireTimesBetween,
  nextFireTime,
  parseCron,
  previousFireTime,
} from '../../../src/policy/cron.js';
import { TimeZoneError } from '../../../src/policy/timezone.js';

const iso = (d: Date | undefined) => d?.toISOString();
const at = (s: string) => new Date(s);

function fires(expression: string, zone: string, from: string, count: number): string[] {
  const cron = parseCron(expression);
  const out: string[] = [];
  let t = at(from);
  for (let i = 0; i < count; i++) {
    t = nextFireTime(cron, zone, t);
    out.push(t.toISOString());
  }
  return out;
}

const sorted = (s: ReadonlySet<number>) => [...s].sort((a, b) => a - b);
const range = (lo: number, hi: number, step = 1) => {
  const out: number[] = [];
  for (let v = lo; v <= hi; v += step) out.push(v);
  return out;
};

describe('cron: parsing', function () {
  it('parses each field form: *, value, range, step, range/step, value/step, lists', function () {
    const c = parseCron('*/15 1-5 1,15,31 */3 1-5/2');
    expect(sorted(c.minutes)).to.deep.equal([0, 15, 30, 45]);
    expect(sorted(c.hours)).to.deep.equal([1, 2, 3, 4, 5]);
    expect(sorted(c.daysOfMonth)).to.deep.equal([1, 15, 31]);
    expect(sorted(c.months)).to.deep.equal([1, 4, 7, 10]);
    expect(sorted(c.daysOfWeek)).to.deep.equal([1, 3, 5]);
    expect(sorted(parseCron('10/20 * * * *').minutes)).to.deep.equal([10, 30, 50]);
    expect(sorted(parseCron('0-10/5,50 * * * *').minutes)).to.deep.equal([0, 5, 10, 50]);
    expect(sorted(parseCron('* * * * *').minutes)).to.deep.equal(range(0, 59));
  });

  it('accepts month and day names in any case, alone and in ranges', function () {
    const c = parseCron('0 0 * jan,Mar-MAY mon-FRI');
    expect(sorted(c.months)).to.deep.equal([1, 3, 4, 5]);
    expect(sorted(c.daysOfWeek)).to.deep.equal([1, 2, 3, 4, 5]);
    expect(sorted(parseCron('0 0 * DEC SUN').months)).to.deep.equal([12]);
    expect(sorted(parseCron('0 0 * * SAT,SUN').daysOfWeek)).to.deep.equal([0, 6]);
  });

  it('treats day-of-week 7 as Sunday', function () {
    expect(sorted(parseCron('0 0 * * 7').daysOfWeek)).to.deep.equal([0]);
    expect(sorted(parseCron('0 0 * * 5-7').daysOfWeek)).to.deep.equal([0, 5, 6]);
  });

  it('expands the descriptors', function () {
    const same = (a: CronSchedule, b: CronSchedule) => {
      expect(sorted(a.minutes)).to.deep.equal(sorted(b.minutes));
      expect(sorted(a.hours)).to.deep.equal(sorted(b.hours));
      expect(sorted(a.daysOfMonth)).to.deep.equal(sorted(b.daysOfMonth));
      expect(sorted(a.months)).to.deep.equal(sorted(b.months));
      expect(sorted(a.daysOfWeek)).to.deep.equal(sorted(b.daysOfWeek));
    };
    same(parseCron('@yearly'), parseCron('0 0 1 1 *'));
    same(parseCron('@annually'), parseCron('0 0 1 1 *'));
    same(parseCron('@monthly'), parseCron('0 0 1 * *'));
    same(parseCron('@weekly'), parseCron('0 0 * * 0'));
    same(parseCron('@daily'), parseCron('0 0 * * *'));
    same(parseCron('@midnight'), parseCron('0 0 * * *'));
    same(parseCron('@HOURLY'), parseCron('0 * * * *'));
  });

  it('parses every macro and name the API admits, and the API admits them all', function () {
    const admitted = new RegExp(CRON_PATTERN);
    const names = [
      ...MONTH_NAMES.map((m) => `0 0 1 ${m} *`),
      ...DAY_NAMES.map((d) => `0 0 * * ${d}`),
    ];
    for (const schedule of [
      ...SCHEDULE_MACROS,
      ...names,
      ...names.map((n) => n.toLowerCase()),
      '30 1 * JAN-jun MON-FRI',
      '0 0 * * 7',
    ]) {
      expect(admitted.test(schedule), schedule).to.equal(true);
      expect(() => parseCron(schedule), schedule).not.to.throw();
    }
  });

  it('marks day fields as restricted unless they start with *', function () {
    const a = parseCron('0 0 1 * MON');
    expect([a.domRestricted, a.dowRestricted]).to.deep.equal([true, true]);
    const b = parseCron('0 0 */2 * MON');
    expect([b.domRestricted, b.dowRestricted]).to.deep.equal([false, true]);
  });

  const bad: Array<[string, RegExp]> = [
    ['', /empty/],
    ['* * * *', /expected 5 fields.*got 4/],
    ['* * * * * *', /got 6/],
    ['60 * * * *', /minute value 60 is out of range 0-59/],
    ['* 24 * * *', /hour value 24 is out of range 0-23/],
    ['* * 0 * *', /day of month value 0 is out of range 1-31/],
    ['* * * 13 *', /month value 13/],
    ['* * * * 8', /day of week value 8/],
    ['5-1 * * * *', /runs backwards/],
    ['*/0 * * * *', /step "0" must be a positive integer/],
    ['*/x * * * *', /step "x"/],
    ['1,,2 * * * *', /empty item/],
    ['1-2-3 * * * *', /malformed minute range/],
    ['*/2/3 * * * *', /malformed minute item/],
    ['* * * FOO *', /month value "FOO".*names: JAN/],
    ['* * * * FUNDAY', /day of week value "FUNDAY"/],
    ['@every 5m', /unknown descriptor/],
    ['@reboot', /unknown descriptor/],
    ['0 0 30 2 *', /never fires/],
    ['0 0 31 4,6,9,11 *', /never fires/],
    ['-1 * * * *', /malformed minute range/],
  ];
  for (const [expression, message] of bad) {
    it(`rejects ${JSON.stringify(expression)} with a reason`, function () {
      expect(() => parseCron(expression))
        .to.throw(CronError)
        .with.property('message')
        .that.matches(message)
        .and.contains('invalid schedule');
    });
  }

  it('accepts Feb 29 and day 31 when some selected month has it', function () {
    expect(() => parseCron('0 0 29 2 *')).not.to.throw();
    expect(() => parseCron('0 0 31 2,3 *')).not.to.throw();
    // With a restricted day of week the OR rule always has days to fire on.
    expect(() => parseCron('0 0 30 2 MON')).not.to.throw();
  });
});

describe('cron: next fire time in UTC', function () {
  it('steps through minutes, hours and days', function () {
    expect(fires('*/15 * * * *', 'UTC', '2026-01-01T10:07:30Z', 3)).to.deep.equal([
      '2026-01-01T10:15:00.000Z',
      '2026-01-01T10:30:00.000Z',
      '2026-01-01T10:45:00.000Z',
    ]);
    expect(fires('0 9 * * MON-FRI', 'UTC', '2026-01-02T09:00:00Z', 2)).to.deep.equal([
      '2026-01-05T09:00:00.000Z', // Friday 09:00 is not after itself; next is Monday
      '2026-01-06T09:00:00.000Z',
    ]);
    expect(fires('@monthly', 'UTC', '2026-01-31T23:59:00Z', 2)).to.deep.equal([
      '2026-02-01T00:00:00.000Z',
      '2026-03-01T00:00:00.000Z',
    ]);
    expect(fires('@yearly', 'UTC', '2026-06-01T00:00:00Z', 1)).to.deep.equal([
      '2027-01-01T00:00:00.000Z',
    ]);
  });

  it('is strictly after the given instant, even inside the firing minute', function () {
    expect(fires('30 10 * * *', 'UTC', '2026-01-01T10:30:00Z', 1)).to.deep.equal([
      '2026-01-02T10:30:00.000Z',
    ]);
    expect(fires('30 10 * * *', 'UTC', '2026-01-01T10:29:59.999Z', 1)).to.deep.equal([
      '2026-01-01T10:30:00.000Z',
    ]);
  });

  it('ORs day-of-month and day-of-week when both are restricted', function () {
    // 2026-02-13 is a Friday; the 1st of March is a Sunday.
    expect(fires('0 0 1 * FRI', 'UTC', '2026-02-12T00:00:00Z', 4)).to.deep.equal([
      '2026-02-13T00:00:00.000Z',
      '2026-02-20T00:00:00.000Z',
      '2026-02-27T00:00:00.000Z',
      '2026-03-01T00:00:00.000Z',
    ]);
  });

  it('ANDs them when one starts with *', function () {
    // Fridays that fall on odd days of the month.
    expect(fires('0 0 */2 * FRI', 'UTC', '2026-01-01T00:00:00Z', 3)).to.deep.equal([
      '2026-01-09T00:00:00.000Z',
      '2026-01-23T00:00:00.000Z',
      '2026-02-13T00:00:00.000Z',
    ]);
  });

  it('finds Feb 29 years ahead', function () {
    expect(fires('0 0 29 2 *', 'UTC', '2025-01-01T00:00:00Z', 2)).to.deep.equal([
      '2028-02-29T00:00:00.000Z',
      '2032-02-29T00:00:00.000Z',
    ]);
  });

  it('skips months without the day of month', function () {
    expect(fires('0 12 31 * *', 'UTC', '2026-01-31T12:00:00Z', 3)).to.deep.equal([
      '2026-03-31T12:00:00.000Z',
      '2026-05-31T12:00:00.000Z',
      '2026-07-31T12:00:00.000Z',
    ]);
  });
});

describe('cron: time zones and daylight saving', function () {
  // Europe/Berlin 2026: spring forward Mar 29 02:00 CET -> 03:00 CEST (01:00Z);
  // fall back Oct 25 03:00 CEST -> 02:00 CET (01:00Z).
  it('fires at local wall-clock times, following the offset change', function () {
    expect(fires('0 9 * * *', 'Europe/Berlin', '2026-03-27T12:00:00Z', 3)).to.deep.equal([
      '2026-03-28T08:00:00.000Z', // 09:00 CET
      '2026-03-29T07:00:00.000Z', // 09:00 CEST
      '2026-03-30T07:00:00.000Z',
    ]);
    expect(fires('0 9 * * *', 'America/New_York', '2026-10-31T14:00:00Z', 2)).to.deep.equal([
      '2026-11-01T14:00:00.000Z', // 09:00 EST after the change at 02:00
      '2026-11-02T14:00:00.000Z',
    ]);
  });

  it('runs a time skipped by spring-forward once, at the moment the clocks jumped', function () {
    expect(fires('30 2 * * *', 'Europe/Berlin', '2026-03-27T00:00:00Z', 4)).to.deep.equal([
      '2026-03-27T01:30:00.000Z', // 02:30 CET
      '2026-03-28T01:30:00.000Z',
      '2026-03-29T01:00:00.000Z', // 02:30 does not exist: 03:00 CEST
      '2026-03-30T00:30:00.000Z', // 02:30 CEST
    ]);
  });

  it('collapses every time skipped by the gap into one run', function () {
    expect(fires('*/15 * * * *', 'Europe/Berlin', '2026-03-29T00:30:00Z', 3)).to.deep.equal([
      '2026-03-29T00:45:00.000Z', // 01:45 CET
      '2026-03-29T01:00:00.000Z', // 02:00..02:45 and 03:00 CEST: once
      '2026-03-29T01:15:00.000Z', // 03:15 CEST
    ]);
  });

  it('runs a repeated fall-back time once, at its first occurrence', function () {
    expect(fires('30 2 * * *', 'Europe/Berlin', '2026-10-24T00:00:00Z', 3)).to.deep.equal([
      '2026-10-24T00:30:00.000Z',
      '2026-10-25T00:30:00.000Z', // 02:30 CEST; 02:30 CET (01:30Z) does not run
      '2026-10-26T01:30:00.000Z',
    ]);
    expect(fires('0 * * * *', 'Europe/Berlin', '2026-10-24T23:30:00Z', 3)).to.deep.equal([
      '2026-10-25T00:00:00.000Z', // 02:00 CEST
      '2026-10-25T02:00:00.000Z', // 03:00 CET; the second 02:00 is not run again
      '2026-10-25T03:00:00.000Z',
    ]);
  });

  it('asked from inside the repeated hour, moves past wall times already run', function () {
    // 01:10Z is 02:10 CET, the second 02:10; 02:15..02:45 already ran in CEST.
    expect(fires('*/15 * * * *', 'Europe/Berlin', '2026-10-25T01:10:00Z', 2)).to.deep.equal([
      '2026-10-25T02:00:00.000Z',
      '2026-10-25T02:15:00.000Z',
    ]);
  });

  it('handles New York transitions at 02:00 local', function () {
    // 2026: Mar 8 02:00 EST -> 03:00 EDT (07:00Z); Nov 1 02:00 EDT -> 01:00 EST (06:00Z).
    expect(fires('30 2 * * *', 'America/New_York', '2026-03-07T12:00:00Z', 2)).to.deep.equal([
      '2026-03-08T07:00:00.000Z',
      '2026-03-09T06:30:00.000Z',
    ]);
    expect(fires('30 1 * * *', 'America/New_York', '2026-10-31T12:00:00Z', 2)).to.deep.equal([
      '2026-11-01T05:30:00.000Z', // 01:30 EDT only
      '2026-11-02T06:30:00.000Z',
    ]);
  });

  it('handles transitions at midnight that move the date (America/Santiago)', function () {
    // 2026-09-06 00:00 -04 does not exist (clocks go to 01:00 -03 at 04:00Z).
    expect(fires('@daily', 'America/Santiago', '2026-09-04T12:00:00Z', 3)).to.deep.equal([
      '2026-09-05T04:00:00.000Z',
      '2026-09-06T04:00:00.000Z',
      '2026-09-07T03:00:00.000Z',
    ]);
    // 2026-04-05: 00:00 -03 becomes 23:00 -04 on the 4th, so midnight of the 5th occurs once.
    expect(fires('@daily', 'America/Santiago', '2026-04-03T12:00:00Z', 3)).to.deep.equal([
      '2026-04-04T03:00:00.000Z',
      '2026-04-05T04:00:00.000Z',
      '2026-04-06T04:00:00.000Z',
    ]);
  });

  it('handles half-hour shifts (Australia/Lord_Howe)', function () {
    // 2026-10-04 02:00 +10:30 -> 02:30 +11 at 15:30Z on the 3rd.
    expect(fires('15 2 * * *', 'Australia/Lord_Howe', '2026-10-02T12:00:00Z', 3)).to.deep.equal([
      '2026-10-02T15:45:00.000Z',
      '2026-10-03T15:30:00.000Z',
      '2026-10-04T15:15:00.000Z',
    ]);
  });

  it('refuses an unknown zone with a clear error', function () {
    expect(() => nextFireTime(parseCron('@daily'), 'Mars/Olympus_Mons', new Date()))
      .to.throw(TimeZoneError)
      .with.property('message')
      .that.contains('unknown time zone "Mars/Olympus_Mons"');
  });
});

describe('cron: previous fire time and windows', function () {
  it('returns the last fire at or before an instant', function () {
    const c = parseCron('*/15 * * * *');
    expect(iso(previousFireTime(c, 'UTC', at('2026-01-01T10:15:00Z')))).to.equal(
      '2026-01-01T10:15:00.000Z',
    );
    expect(iso(previousFireTime(c, 'UTC', at('2026-01-01T10:14:59Z')))).to.equal(
      '2026-01-01T10:00:00.000Z',
    );
    expect(
      iso(previousFireTime(parseCron('0 0 29 2 *'), 'UTC', at('2026-06-01T00:00:00Z'))),
    ).to.equal('2024-02-29T00:00:00.000Z');
  });

  it('agrees with nextFireTime across DST changes', function () {
    const c = parseCron('*/15 * * * *');
    // Inside Berlin's repeated hour the latest fire is the first-occurrence 02:45 CEST.
    expect(iso(previousFireTime(c, 'Europe/Berlin', at('2026-10-25T01:10:00Z')))).to.equal(
      '2026-10-25T00:45:00.000Z',
    );
    expect(iso(previousFireTime(c, 'Europe/Berlin', at('2026-03-29T01:05:00Z')))).to.equal(
      '2026-03-29T01:00:00.000Z',
    );
  });

  it('lists fires in (from, to] with an optional limit', function () {
    const c = parseCron('0 * * * *');
    const list = fireTimesBetween(c, 'UTC', at('2026-01-01T00:00:00Z'), at('2026-01-01T03:00:00Z'));
    expect(list.map(iso)).to.deep.equal([
      '2026-01-01T01:00:00.000Z',
      '2026-01-01T02:00:00.000Z',
      '2026-01-01T03:00:00.000Z',
    ]);
    expect(
      fireTimesBetween(c, 'UTC', at('2026-01-01T00:00:00Z'), at('2026-01-02T00:00:00Z'), 2),
    ).to.have.length(2);
  });
});

/**
 * An independent, slow model of the documented rule: walk the timeline minute by minute and
 * fire at each instant whose wall-clock reading matches for the first time, and at the end of
 * a gap when any skipped wall-clock time matches.
 */
function bruteForceFires(c: CronSchedule, zone: string, from: Date, to: Date): string[] {
  const format = new Intl.DateTimeFormat('en-GB', {
    timeZone: zone,
    hourCycle: 'h23',
    year: 'numeric',
    month: '2-digit',
    day: '2-digit',
    hour: '2-digit',
    minute: '2-digit',
  });
  const wall = (t: number) => {
    const p = Object.fromEntries(format.formatToParts(t).map((x) => [x.type, x.value]));
    return Date.UTC(+p.year!, +p.month! - 1, +p.day!, +p.hour! % 24, +p.minute!);
  };
  const matches = (w: number) => {
    const d = new Date(w);
    const dom = c.daysOfMonth.has(d.getUTCDate());
    const dow = c.daysOfWeek.has(d.getUTCDay());
    const day = c.domRestricted && c.dowRestricted ? dom || dow : dom && dow;
    return (
      c.minutes.has(d.getUTCMinutes()) &&
      c.hours.has(d.getUTCHours()) &&
      c.months.has(d.getUTCMonth() + 1) &&
      day
    );
  };
  const seen = new Set<number>();
  const out: string[] = [];
  let previousWall = wall(from.getTime());
  for (let t = from.getTime() + 60_000; t <= to.getTime(); t += 60_000) {
    const w = wall(t);
    let fire = false;
    for (let skipped = previousWall + 60_000; skipped < w; skipped += 60_000) {
      if (!seen.has(skipped) && matches(skipped)) fire = true;
      seen.add(skipped);
    }
    if (!seen.has(w) && matches(w)) fire = true;
    seen.add(w);
    if (fire) out.push(new Date(t).toISOString());
    previousWall = Math.max(previousWall, w);
  }
  return out;
}

describe('cron: agrees with a minute-by-minute model around DST changes', function () {
  const windows: Array<[string, string, string]> = [
    ['Europe/Berlin', '2026-03-28T20:00:00Z', '2026-03-29T06:00:00Z'],
    ['Europe/Berlin', '2026-10-24T20:00:00Z', '2026-10-25T06:00:00Z'],
    ['America/New_York', '2026-11-01T02:00:00Z', '2026-11-01T10:00:00Z'],
    ['America/Santiago', '2026-09-05T22:00:00Z', '2026-09-06T08:00:00Z'],
    ['America/Santiago', '2026-04-04T22:00:00Z', '2026-04-05T08:00:00Z'],
    ['Australia/Lord_Howe', '2026-04-04T10:00:00Z', '2026-04-04T20:00:00Z'],
    ['Australia/Lord_Howe', '2026-10-03T10:00:00Z', '2026-10-03T20:00:00Z'],
  ];
  const expressions = [
    '* * * * *',
    '*/7 * * * *',
    '0 * * * *',
    '30 * * * *',
    '15,45 1-3 * * *',
    '0 0 * * *',
    '0 2 * * *',
    '30 2 * * SUN',
    '59 23 * * *',
    '0 1 4-6 * *',
  ];
  for (const [zone, from, to] of windows) {
    it(`${zone} ${from.slice(0, 10)}: ${expressions.length} schedules`, function () {
      for (const expression of expressions) {
        const c = parseCron(expression);
        const got = fireTimesBetween(c, zone, at(from), at(to)).map((d) => d.toISOString());
        expect(got, expression).to.deep.equal(bruteForceFires(c, zone, at(from), at(to)));
      }
    });
  }
});
