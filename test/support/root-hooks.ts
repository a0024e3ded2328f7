import { stopSharedControlPlane } from './cluster.js';

/** Mocha root hooks: one control plane per test run, stopped by PID when the run ends. */
export const mochaHooks = {
  async afterAll(): Promise<void> {
    await stopSharedControlPlane();
  },
};
