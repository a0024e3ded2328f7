import { expect } from 'chai';
import type { RetentionRules, SnapshotFacts } from '../../../src/policy/retention.js';
import {
  DurationError,
  bucketKey,
  parseDuration,
  planRetention,
} from '../../../src/policy/retention.js';
import { nextFireTime, parseCron } from '../../../src/policy/cron.js';
import { planSchedule } from '../../../src/policy/schedule.js';
import { snapshotName } from '../../../src/policy/naming.js';
import { FakeClock } from '../../support/fakes/clock.js';

const HOUR = 3_600_000;
const DAY = 24 * HOUR;

function snap(name: string, time: string, extra: Partial<SnapshotFacts> = {}): SnapshotFacts {
  return {
    name,
    time: new Date(time),
    ready: true,
    failed: false,
    deleting: false,
    inUse: false,
    ...extra,
  };
}

/** Ready snapshots s0 (oldest) .. s{n-1} (newest), one per hour from `start`. */
function hourly(n: number, start = '2026-01-01T00:00:00Z'): SnapshotFacts[] {
  return Array.from({ length: n }, (_, i) =>
    snap(`s${i}`, new Date(Date.parse(start) + i * HOUR).toISOString()),
  );
}

function retain(
  snapshots: SnapshotFacts[],
  rules: RetentionRules,
  opts: { now?: string; timeZone?: string; suspended?: boolean } = {},
) {
  return planRetention({
    snapshots,
    rules,
    timeZone: opts.timeZone ?? 'UTC',
    now: new Date(opts.now ?? '2026-06-01T00:00:00Z'),
    ...(opts.suspended !== undefined ? { suspended: opts.suspended } : {}),
  });
}

describe('retention: durations', function () {
  it('parses s, m, h, d, w and combinations', function () {
    expect(parseDuration('45s')).to.equal(45);
    expect(parseDuration('90m')).to.equal(5400);
    expect(parseDuration('36h')).to.equal(129_600);
    expect(parseDuration('30d')).to.equal(2_592_000);
    expect(parseDuration('1w3d')).to.equal(864_000);
    expect(parseDuration('1h30m')).to.equal(5400);
  });

  it('rejects anything else with an example of the format', function () {
    for (const bad of ['', '30', 'd', '1y', '-1d', '1.5h', '0d', '1 d']) {
      expect(() => parseDuration(bad), bad).to.throw(DurationError, /e\.g\. "36h"/);
    }
  });
});

describe('retention: count and age rules', function () {
  it('prunes nothing when no rule is set', function () {
    const d = retain(hourly(5), {});
    expect(d.prune).to.deep.equal([]);
    expect(d.keep.get('s0')).to.deep.equal(['no-rules']);
  });

  it('keepLast keeps the newest n and prunes the rest, oldest first', function () {
    const d = retain(hourly(5), { keepLast: 2 });
    expect(d.prune).to.deep.equal(['s0', 's1', 's2']);
    expect(d.keep.get('s4')).to.include('keepLast');
    expect(d.keep.get('s3')).to.deep.equal(['keepLast']);
  });

  it('maxAge alone keeps what is younger than it (and always the newest ready)', function () {
    const snaps = hourly(5, '2026-05-31T19:00:00Z'); // s4 at 23:00, now is 00:00
    const d = retain(snaps, { maxAgeSeconds: 2.5 * 3600 });
    expect(d.prune).to.deep.equal(['s0', 's1', 's2']);
  });

  it('maxAge caps what keepLast keeps', function () {
    const snaps = hourly(5, '2026-05-31T19:00:00Z');
    const d = retain(snaps, { keepLast: 4, maxAgeSeconds: 2.5 * 3600 });
    expect(d.prune).to.deep.equal(['s0', 's1', 's2']);
  });

  it('keeps the newest ready snapshot even when every rule would drop it', function () {
    const snaps = hourly(3, '2025-01-01T00:00:00Z');
    const d = retain(snaps, { maxAgeSeconds: 3600 });
    expect(d.prune).to.deep.equal(['s0', 's1']);
    expect(d.keep.get('s2')).to.deep.equal(['min-ready']);
  });

  it('minReady keeps that many newest ready snapshots; 0 still keeps one', function () {
    expect(retain(hourly(5), { keepLast: 1, minReady: 3 }).prune).to.deep.equal(['s0', 's1']);
    expect(retain(hourly(5), { keepLast: 1, minReady: 0 }).prune).to.deep.equal([
      's0',
      's1',
      's2',
      's3',
    ]);
  });
});

describe('retention: never-prune rules', function () {
  it('never prunes a snapshot that is not ready, and does not count it', function () {
    const snaps = [...hourly(4), snap('pending', '2026-01-01T05:00:00Z', { ready: false })];
    snaps[0]!.ready = false; // an old one that never became ready
    const d = retain(snaps, { keepLast: 2 });
    expect(d.keep.get('pending')).to.deep.equal(['not-ready']);
    expect(d.keep.get('s0')).to.deep.equal(['not-ready']);
    // keepLast counts ready ones: s3 and s2 are kept, s1 goes.
    expect(d.prune).to.deep.equal(['s1']);
  });

  it('never prunes the newest ready snapshot', function () {
    const snaps = [...hourly(3), snap('newer-pending', '2026-01-01T09:00:00Z', { ready: false })];
    const d = retain(snaps, { maxAgeSeconds: 60 });
    expect(d.prune).to.deep.equal(['s0', 's1']);
    expect(d.keep.get('s2')).to.deep.equal(['min-ready']);
  });

  it('never prunes a snapshot in use', function () {
    const snaps = hourly(5);
    snaps[0]!.inUse = true;
    const d = retain(snaps, { keepLast: 1 });
    expect(d.prune).to.deep.equal(['s1', 's2', 's3']);
    expect(d.keep.get('s0')).to.deep.equal(['in-use']);
  });

  it('pauses pruning while the latest run is failing', function () {
    const snaps = [
      ...hourly(5),
      snap('latest', '2026-01-01T06:00:00Z', { ready: false, failed: true }),
    ];
    const d = retain(snaps, { keepLast: 1 });
    expect(d.prune).to.deep.equal([]);
    expect(d.pausedReason).to.contain('latest').and.contain('failed');
    expect(d.keep.get('s0')).to.deep.equal(['paused']);
  });

  it('resumes once a newer run succeeds, keeping the failed snapshot', function () {
    const snaps = [
      ...hourly(5),
      snap('failed', '2026-01-01T06:00:00Z', { ready: false, failed: true }),
      snap('recovered', '2026-01-01T07:00:00Z'),
    ];
    const d = retain(snaps, { keepLast: 2 });
    expect(d.pausedReason).to.equal(undefined);
    expect(d.prune).to.deep.equal(['s0', 's1', 's2', 's3']);
    expect(d.keep.get('failed')).to.deep.equal(['not-ready']);
  });

  it('pauses pruning while the policy is suspended', function () {
    const d = retain(hourly(5), { keepLast: 1 }, { suspended: true });
    expect(d.prune).to.deep.equal([]);
    expect(d.pausedReason).to.contain('suspended');
  });

  it('ignores snapshots already being deleted', function () {
    const snaps = hourly(3);
    snaps[0]!.deleting = true;
    const d = retain(snaps, { keepLast: 1 });
    expect(d.prune).to.deep.equal(['s1']);
    expect(d.keep.has('s0')).to.equal(false);
  });

  it('with only unready snapshots prunes nothing', function () {
    const snaps = hourly(3).map((s) => ({ ...s, ready: false }));
    expect(retain(snaps, { keepLast: 1 }).prune).to.deep.equal([]);
  });
});

describe('retention: GFS tiers', function () {
  it('keeps the newest of each of the n most recent buckets that hold a snapshot', function () {
    const snaps = [
      snap('mon-a', '2026-01-05T08:00:00Z'),
      snap('mon-b', '2026-01-05T20:00:00Z'),
      // no snapshot on Tuesday
      snap('wed-a', '2026-01-07T08:00:00Z'),
      snap('wed-b', '2026-01-07T20:00:00Z'),
      snap('thu-a', '2026-01-08T08:00:00Z'),
      snap('thu-b', '2026-01-08T20:00:00Z'),
    ];
    const d = retain(snaps, { daily: 3 });
    expect(d.prune).to.deep.equal(['mon-a', 'wed-a', 'thu-a']);
  });

  it('lets tiers share snapshots', function () {
    const snaps = hourly(48); // Jan 1 and Jan 2
    const d = retain(snaps, { hourly: 2, daily: 2, monthly: 1 });
    expect(d.keep.get('s47')).to.have.members(['hourly', 'daily', 'monthly', 'min-ready']);
    expect(d.keep.get('s23')).to.deep.equal(['daily']);
    expect(d.keep.get('s46')).to.deep.equal(['hourly']);
    expect(d.prune).to.have.length(45);
  });

  it('buckets days in the policy time zone', function () {
    // 23:30Z and 01:30Z: different UTC days, the same New York day, different Tokyo... days.
    const snaps = [snap('a', '2026-03-02T23:30:00Z'), snap('b', '2026-03-03T01:30:00Z')];
    expect(retain(snaps, { daily: 5 }, { timeZone: 'UTC' }).prune).to.deep.equal([]);
    expect(retain(snaps, { daily: 5 }, { timeZone: 'America/New_York' }).prune).to.deep.equal([
      'a',
    ]);
    expect(bucketKey('daily', new Date('2026-03-02T23:30:00Z'), 'Asia/Tokyo')).to.equal('2026-3-3');
  });

  it('uses ISO weeks (Monday first, the year of the Thursday)', function () {
    const key = (t: string) => bucketKey('weekly', new Date(t), 'UTC');
    expect(key('2026-01-04T12:00:00Z')).to.equal(key('2025-12-29T12:00:00Z')); // Sun, Mon
    expect(key('2026-01-05T00:00:00Z')).not.to.equal(key('2026-01-04T23:59:59Z'));
    expect(key('2027-01-01T00:00:00Z')).to.equal('2026-W53');
    expect(key('2024-12-30T00:00:00Z')).to.equal('2025-W1');
    expect(bucketKey('monthly', new Date('2026-02-28T23:30:00Z'), 'Europe/Berlin')).to.equal(
      '2026-3',
    );
    expect(bucketKey('yearly', new Date('2026-12-31T23:30:00Z'), 'Europe/Berlin')).to.equal('2027');
  });

  it('buckets the repeated fall-back hour as one wall-clock hour', function () {
    const a = bucketKey('hourly', new Date('2026-11-01T05:30:00Z'), 'America/New_York');
    const b = bucketKey('hourly', new Date('2026-11-01T06:30:00Z'), 'America/New_York');
    expect(a).to.equal(b);
  });
});

/** An independent bucket function: Intl parts, not the module under test. */
function referenceBucket(tier: string, t: number, zone: string): string {
  const p = Object.fromEntries(
    new Intl.DateTimeFormat('en-CA', {
      timeZone: zone,
      hourCycle: 'h23',
      year: 'numeric',
      month: '2-digit',
      day: '2-digit',
      hour: '2-digit',
      weekday: 'short',
    })
      .formatToParts(t)
      .map((x) => [x.type, x.value]),
  );
  const date = `${p.year}-${p.month}-${p.day}`;
  if (tier === 'hourly') return `${date} ${p.hour}`;
  if (tier === 'daily') return date;
  if (tier === 'monthly') return `${p.year}-${p.month}`;
  if (tier === 'yearly') return `${p.year}`;
  // Weekly: the date of the Monday starting the week.
  const dayIndex = ['Mon', 'Tue', 'Wed', 'Thu', 'Fri', 'Sat', 'Sun'].indexOf(p.weekday!);
  const monday = new Date(Date.UTC(+p.year!, +p.month! - 1, +p.day! - dayIndex));
  return monday.toISOString().slice(0, 10);
}

describe('retention: a simulated year of hourly snapshots (New York, with DST)', function () {
  const zone = 'America/New_York';
  const rules: RetentionRules = { hourly: 24, daily: 7, weekly: 4, monthly: 6, yearly: 1 };
  const creation = new Date('2026-01-01T04:30:00Z'); // 2025-12-31 23:30 EST
  const end = new Date('2027-01-01T05:00:00Z'); // 2027-01-01 00:00 EST, not included
  let all: Date[];
  let remaining: SnapshotFacts[];

  before(function () {
    this.timeout(60_000);
    // Schedule -> run -> name -> snapshot -> retention -> prune, once per fired hour, as the
    // controller does, driven by a fake clock.
    const clock = new FakeClock(creation);
    const cron = parseCron('@hourly');
    all = [];
    remaining = [];
    let handled: Date | undefined;
    for (;;) {
      const next = nextFireTime(cron, zone, clock.now());
      if (next.getTime() >= end.getTime()) break;
      clock.set(next);
      const plan = planSchedule({
        schedule: '@hourly',
        timeZone: zone,
        creationTime: creation,
        now: clock.now(),
        ...(handled ? { lastHandledTime: handled } : {}),
      });
      expect(plan.missed).to.equal(0);
      expect(plan.run?.getTime()).to.equal(next.getTime());
      handled = plan.handledThrough;
      all.push(plan.run!);
      remaining.push({
        name: snapshotName('hourly', 'data', { kind: 'scheduled', scheduledTime: plan.run! }),
        time: plan.run!,
        ready: true,
        failed: false,
        deleting: false,
        inUse: false,
      });
      const decision = planRetention({
        snapshots: remaining,
        rules,
        timeZone: zone,
        now: clock.now(),
      });
      const pruned = new Set(decision.prune);
      remaining = remaining.filter((s) => !pruned.has(s.name));
    }
  });

  it('took one snapshot per wall-clock hour: 8759 (the spring-forward hour does not exist)', function () {
    expect(all).to.have.length(8759);
    expect(new Set(remaining.map((s) => s.name)).size).to.equal(remaining.length);
  });

  it('keeps exactly the expected 37 snapshots', function () {
    const local = (d: Date) =>
      new Intl.DateTimeFormat('sv-SE', {
        timeZone: zone,
        dateStyle: 'short',
        timeStyle: 'short',
        hourCycle: 'h23',
      }).format(d);
    const kept = remaining.map((s) => local(s.time)).sort();
    const hours24 = Array.from(
      { length: 24 },
      (_, h) => `2026-12-31 ${String(h).padStart(2, '0')}:00`,
    );
    const expected = [
      ...['07-31', '08-31', '09-30', '10-31', '11-30'].map((d) => `2026-${d} 23:00`), // monthly
      ...['12-13', '12-20'].map((d) => `2026-${d} 23:00`), // weekly (Sundays; 12-27 is daily)
      ...['25', '26', '27', '28', '29', '30'].map((d) => `2026-12-${d} 23:00`), // daily
      ...hours24, // hourly; 12-31 23:00 is also daily, weekly, monthly and yearly
    ].sort();
    expect(kept).to.deep.equal(expected);
    expect(kept).to.have.length(37);
  });

  it('matches a batch evaluation with an independent bucket function', function () {
    const expected = new Set<number>();
    const newestFirst = [...all].sort((a, b) => b.getTime() - a.getTime());
    for (const [tier, count] of Object.entries(rules)) {
      const seen = new Set<string>();
      for (const t of newestFirst) {
        if (seen.size >= count) break;
        const key = referenceBucket(tier, t.getTime(), zone);
        if (!seen.has(key)) {
          seen.add(key);
          expected.add(t.getTime());
        }
      }
    }
    expect(remaining.map((s) => s.time.getTime()).sort()).to.deep.equal([...expected].sort());
  });

  it('spans the whole year as intended', function () {
    expect(all[0]!.toISOString()).to.equal('2026-01-01T05:00:00.000Z');
    expect(all.at(-1)!.toISOString()).to.equal('2027-01-01T04:00:00.000Z');
    expect(end.getTime() - all[0]!.getTime()).to.equal(365 * DAY);
  });
});
