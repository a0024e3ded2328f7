import { expect } from 'chai';
import {
  TimeZoneError,
  isValidTimeZone,
  localParts,
  offsetAt,
  resolveLocal,
  toLocal,
  validateTimeZone,
} from '../../../src/policy/timezone.js';

const HOUR = 3_600_000;
const naive = (s: string) => new Date(`${s}Z`);

describe('time zones', function () {
  it('accepts IANA names and UTC', function () {
    for (const zone of ['UTC', 'Etc/UTC', 'Europe/Berlin', 'America/New_York', 'Asia/Shanghai']) {
      expect(() => validateTimeZone(zone), zone).not.to.throw();
    }
  });

  it('rejects unknown names, fixed offsets and empty strings with the zone in the message', function () {
    for (const zone of ['Mars/Olympus_Mons', 'Europe/Berlim', '+02:00', '-0500', '', ' ']) {
      expect(() => validateTimeZone(zone), zone)
        .to.throw(TimeZoneError)
        .with.property('message')
        .that.contains(`unknown time zone "${zone}"`)
        .and.contains('IANA');
      expect(isValidTimeZone(zone)).to.equal(false);
    }
  });

  it('reads wall-clock fields and weekday of an instant', function () {
    expect(localParts(new Date('2026-03-29T01:30:00Z'), 'Europe/Berlin')).to.deep.equal({
      year: 2026,
      month: 3,
      day: 29,
      hour: 3,
      minute: 30,
      second: 0,
      weekday: 0,
    });
    expect(localParts(new Date('2026-01-01T00:00:00Z'), 'America/Los_Angeles')).to.include({
      year: 2025,
      month: 12,
      day: 31,
      hour: 16,
      weekday: 3,
    });
  });

  it('gives offsets on both sides of a change, including half hours', function () {
    expect(offsetAt(Date.parse('2026-03-29T00:59:59Z'), 'Europe/Berlin')).to.equal(1 * HOUR);
    expect(offsetAt(Date.parse('2026-03-29T01:00:00Z'), 'Europe/Berlin')).to.equal(2 * HOUR);
    expect(offsetAt(Date.parse('2026-01-15T00:00:00Z'), 'Asia/Kolkata')).to.equal(5.5 * HOUR);
    expect(offsetAt(Date.parse('2026-01-15T00:00:00Z'), 'America/St_Johns')).to.equal(-3.5 * HOUR);
    expect(toLocal(new Date('2026-07-01T12:00:00Z'), 'America/New_York').toISOString()).to.equal(
      '2026-07-01T08:00:00.000Z',
    );
  });

  it('resolves an ordinary wall-clock time to its one instant', function () {
    expect(resolveLocal(naive('2026-07-01T08:00:00'), 'America/New_York')).to.deep.equal({
      kind: 'exact',
      instant: new Date('2026-07-01T12:00:00Z'),
    });
  });

  it('resolves a skipped wall-clock time to the moment the clocks jumped', function () {
    expect(resolveLocal(naive('2026-03-29T02:30:00'), 'Europe/Berlin')).to.deep.equal({
      kind: 'skipped',
      instant: new Date('2026-03-29T01:00:00Z'),
    });
    expect(resolveLocal(naive('2026-03-08T02:00:00'), 'America/New_York')).to.deep.equal({
      kind: 'skipped',
      instant: new Date('2026-03-08T07:00:00Z'),
    });
  });

  it('resolves a repeated wall-clock time to its first occurrence', function () {
    expect(resolveLocal(naive('2026-10-25T02:30:00'), 'Europe/Berlin')).to.deep.equal({
      kind: 'repeated',
      instant: new Date('2026-10-25T00:30:00Z'),
    });
    expect(resolveLocal(naive('2026-11-01T01:00:00'), 'America/New_York')).to.deep.equal({
      kind: 'repeated',
      instant: new Date('2026-11-01T05:00:00Z'),
    });
  });

  it('round-trips every hour of a year in a zone with DST', function () {
    const zone = 'Australia/Sydney';
    let repeated = 0;
    for (
      let t = Date.parse('2026-01-01T00:00:00Z');
      t < Date.parse('2027-01-01T00:00:00Z');
      t += HOUR
    ) {
      const r = resolveLocal(toLocal(t, zone), zone);
      if (r.kind === 'repeated' && r.instant.getTime() !== t) {
        // The second occurrence maps back to the first, one hour earlier.
        expect(r.instant.getTime()).to.equal(t - HOUR);
        repeated++;
      } else {
        expect(r.instant.getTime(), new Date(t).toISOString()).to.equal(t);
      }
    }
    expect(repeated).to.equal(1);
  });
});
