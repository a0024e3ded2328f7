/** Time as the operator sees it; tests swap in a fake so schedules run without waiting. */
export interface Clock {
  now(): Date;
}

export const systemClock: Clock = {
  now: () => new Date(),
};
