import { expect } from 'chai';
import { CronError } from '../../../src/policy/cron.js';
import { MISSED_COUNT_LIMIT, planSchedule } from '../../../src/policy/schedule.js';
import type { ScheduleInput } from '../../../src/policy/schedule.js';
import { TimeZoneError } from '../../../src/policy/timezone.js';
import { FakeClock } from '../../support/fakes/clock.js';

const at = (s: string) => new Date(s);
const iso = (d: Date | undefined) => d?.toISOString();

function plan(overrides: Partial<ScheduleInput>) {
  return planSchedule({
    schedule: '0 * * * *',
    creationTime: at('2026-01-01T00:00:00Z'),
    now: at('2026-01-01T00:30:00Z'),
    ...overrides,
  });
}

describe('schedule planning', function () {
  it('waits for the first scheduled time after creation', function () {
    const p = plan({ creationTime: at('2026-01-01T00:10:00Z'), now: at('2026-01-01T00:30:00Z') });
    expect(p.run).to.equal(undefined);
    expect(p.missed).to.equal(0);
    expect(p.handledThrough).to.equal(undefined);
    expect(iso(p.nextScheduleTime)).to.equal('2026-01-01T01:00:00.000Z');
  });

  it('runs a scheduled time that has come, and advances the handled mark to it', function () {
    const p = plan({ now: at('2026-01-01T01:00:05Z') });
    expect(iso(p.run)).to.equal('2026-01-01T01:00:00.000Z');
    expect(iso(p.handledThrough)).to.equal('2026-01-01T01:00:00.000Z');
    expect(p.missed).to.equal(0);
    expect(iso(p.nextScheduleTime)).to.equal('2026-01-01T02:00:00.000Z');
  });

  it('does not run a handled time again (a retried reconcile is a no-op)', function () {
    const p = plan({
      lastHandledTime: at('2026-01-01T01:00:00Z'),
      now: at('2026-01-01T01:20:00Z'),
    });
    expect(p.run).to.equal(undefined);
    expect(p.missed).to.equal(0);
  });

  it('takes one catch-up run, the most recent, and counts the others as missed', function () {
    const p = plan({
      lastHandledTime: at('2026-01-01T01:00:00Z'),
      now: at('2026-01-01T05:10:00Z'),
    });
    expect(iso(p.run)).to.equal('2026-01-01T05:00:00.000Z');
    expect(p.missed).to.equal(3); // 02:00, 03:00, 04:00
    expect(iso(p.lastMissed)).to.equal('2026-01-01T04:00:00.000Z');
    expect(iso(p.handledThrough)).to.equal('2026-01-01T05:00:00.000Z');
  });

  it('runs within startingDeadlineSeconds', function () {
    const p = plan({
      lastHandledTime: at('2026-01-01T00:00:00Z'),
      now: at('2026-01-01T01:05:00Z'),
      startingDeadlineSeconds: 300,
    });
    expect(iso(p.run)).to.equal('2026-01-01T01:00:00.000Z');
    expect(p.missed).to.equal(0);
  });

  it('past the deadline runs nothing and counts the late run as missed', function () {
    const p = plan({
      lastHandledTime: at('2026-01-01T00:00:00Z'),
      now: at('2026-01-01T01:05:01Z'),
      startingDeadlineSeconds: 300,
    });
    expect(p.run).to.equal(undefined);
    expect(p.missed).to.equal(1);
    expect(iso(p.lastMissed)).to.equal('2026-01-01T01:00:00.000Z');
    // Marked handled, so the next reconcile does not count it again.
    expect(iso(p.handledThrough)).to.equal('2026-01-01T01:00:00.000Z');
    expect(iso(p.nextScheduleTime)).to.equal('2026-01-01T02:00:00.000Z');
  });

  it('counts every missed run past the deadline, and still at most one catch-up', function () {
    const p = plan({
      lastHandledTime: at('2026-01-01T00:00:00Z'),
      now: at('2026-01-01T06:00:30Z'),
      startingDeadlineSeconds: 60,
    });
    expect(iso(p.run)).to.equal('2026-01-01T06:00:00.000Z');
    expect(p.missed).to.equal(5);
  });

  it('stops counting at the limit and says the count is a lower bound', function () {
    const p = plan({
      schedule: '* * * * *',
      lastHandledTime: at('2026-01-01T00:00:00Z'),
      now: at('2026-01-10T00:00:00Z'),
    });
    expect(iso(p.run)).to.equal('2026-01-10T00:00:00.000Z');
    expect(p.missed).to.equal(MISSED_COUNT_LIMIT);
    expect(p.missedCountIsLowerBound).to.equal(true);
    expect(iso(p.handledThrough)).to.equal('2026-01-10T00:00:00.000Z');
  });

  it('while suspended runs nothing, misses nothing, handles nothing and shows no next time', function () {
    const p = plan({
      lastHandledTime: at('2026-01-01T00:00:00Z'),
      now: at('2026-01-01T05:10:00Z'),
      suspend: true,
    });
    expect(p.run).to.equal(undefined);
    expect(p.missed).to.equal(0);
    expect(p.handledThrough).to.equal(undefined);
    expect(p.nextScheduleTime).to.equal(undefined);
  });

  it('evaluates the schedule in the policy time zone', function () {
    const p = plan({
      schedule: '0 2 * * *',
      timeZone: 'Asia/Shanghai',
      creationTime: at('2026-01-01T00:00:00Z'),
      now: at('2026-01-01T12:00:00Z'),
    });
    // 02:00 in Shanghai (UTC+8) is 18:00Z the day before.
    expect(iso(p.nextScheduleTime)).to.equal('2026-01-01T18:00:00.000Z');
  });

  it('uses UTC when timeZone is empty or absent', function () {
    expect(iso(plan({ schedule: '0 2 * * *', timeZone: '' }).nextScheduleTime)).to.equal(
      '2026-01-01T02:00:00.000Z',
    );
  });

  it('throws a clear error for a bad schedule or time zone', function () {
    expect(() => plan({ schedule: '0 25 * * *' })).to.throw(CronError, /hour value 25/);
    expect(() => plan({ timeZone: 'Europe/Atlantis' })).to.throw(TimeZoneError, /Europe\/Atlantis/);
  });

  it('driven by a fake clock across a DST change, takes each run exactly once', function () {
    // Hourly in Berlin over the autumn change: 25 real hours, 24 wall-clock hours.
    const clock = new FakeClock('2026-10-24T22:00:00Z');
    let handled: Date | undefined;
    const runs: string[] = [];
    const end = Date.parse('2026-10-25T22:00:00Z');
    while (clock.now().getTime() < end) {
      clock.advance(60_000);
      const p = planSchedule({
        schedule: '@hourly',
        timeZone: 'Europe/Berlin',
        creationTime: at('2026-10-24T21:30:00Z'),
        now: clock.now(),
        startingDeadlineSeconds: 120,
        ...(handled ? { lastHandledTime: handled } : {}),
      });
      expect(p.missed).to.equal(0);
      if (p.run) runs.push(p.run.toISOString());
      if (p.handledThrough) handled = p.handledThrough;
    }
    expect(runs).to.have.length(24);
    expect(new Set(runs).size).to.equal(24);
    expect(runs).to.include('2026-10-25T00:00:00.000Z'); // 02:00 CEST
    expect(runs).not.to.include('2026-10-25T01:00:00.000Z'); // 02:00 CET, repeated
  });
});
