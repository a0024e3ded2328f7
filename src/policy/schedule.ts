/**
 * Which scheduled run a BackupPolicy should take now, and what it missed.
 *
 * Rules (CronJob-like, with the gaps users of other tools complained about closed):
 * - Scheduled times are considered in the window (since, now], where `since` is the last
 *   scheduled time already handled (taken or missed), or the policy's
 *   creation time. A new policy therefore waits for its first scheduled time; on-demand runs
 *   use the run-now annotation instead.
 * - At most one run is taken: the most recent scheduled time in the window, and only while
 *   now - that time <= startingDeadlineSeconds (no deadline: always). Every other scheduled
 *   time in the window is a missed run, and so is the most recent one when it is too late.
 * - While suspended nothing runs, nothing is missed and nothing is handled; the caller starts
 *   the window at the resume time, so resuming neither catches up nor reports the paused
 *   period as missed.
 */
import type { CronSchedule } from './cron.js';
import { fireTimesBetween, nextFireTime, parseCron, previousFireTime } from './cron.js';
import { validateTimeZone } from './timezone.js';

export interface ScheduleInput {
  schedule: string;
  /** IANA zone; UTC when absent. */
  timeZone?: string;
  startingDeadlineSeconds?: number;
  suspend?: boolean;
  /** Last scheduled time already handled, if any. */
  lastHandledTime?: Date;
  creationTime: Date;
  now: Date;
}

export interface SchedulePlan {
  /** The scheduled time to run now. */
  run?: Date;
  /** Scheduled times in the window that will never run. */
  missed: number;
  /** True when the window held more scheduled times than are counted one by one. */
  missedCountIsLowerBound: boolean;
  /** The most recent missed scheduled time. */
  lastMissed?: Date;
  /** The new `lastHandledTime` once this plan is carried out (unchanged when undefined). */
  handledThrough?: Date;
  /** The next scheduled time after now; undefined while suspended. */
  nextScheduleTime?: Date;
}

/** Counting stops here; a policy that slept through more runs than this has bigger news. */
export const MISSED_COUNT_LIMIT = 1000;

export function resolvedTimeZone(timeZone: string | undefined): string {
  return timeZone === undefined || timeZone === '' ? 'UTC' : timeZone;
}

/** Parses and checks schedule and zone together; throws CronError or TimeZoneError. */
export function compileSchedule(schedule: string, timeZone?: string): CronSchedule {
  validateTimeZone(resolvedTimeZone(timeZone));
  return parseCron(schedule);
}

export function planSchedule(input: ScheduleInput): SchedulePlan {
  const zone = resolvedTimeZone(input.timeZone);
  const cron = compileSchedule(input.schedule, zone);
  const now = input.now;
  const since =
    input.lastHandledTime && input.lastHandledTime.getTime() > input.creationTime.getTime()
      ? input.lastHandledTime
      : input.creationTime;

  if (input.suspend) return { missed: 0, missedCountIsLowerBound: false };
  let inWindow = fireTimesBetween(cron, zone, since, now, MISSED_COUNT_LIMIT + 1);
  const lowerBound = inWindow.length > MISSED_COUNT_LIMIT;
  if (lowerBound) {
    const latest = previousFireTime(cron, zone, now);
    inWindow = [...inWindow.slice(0, MISSED_COUNT_LIMIT), ...(latest ? [latest] : [])];
  }
  const latest = inWindow.at(-1);

  const nextScheduleTime = nextFireTime(cron, zone, now);
  if (!latest) return { missed: 0, missedCountIsLowerBound: false, nextScheduleTime };

  const deadlineMs = (input.startingDeadlineSeconds ?? Number.POSITIVE_INFINITY) * 1000;
  const onTime = now.getTime() - latest.getTime() <= deadlineMs;
  const missedTimes = onTime ? inWindow.slice(0, -1) : inWindow;
  const plan: SchedulePlan = {
    missed: missedTimes.length,
    missedCountIsLowerBound: lowerBound,
    handledThrough: latest,
    nextScheduleTime,
  };
  if (onTime) plan.run = latest;
  const lastMissed = missedTimes.at(-1);
  if (lastMissed) plan.lastMissed = lastMissed;
  return plan;
}
