/**
 * Starts an owned control plane, prints its state as one JSON line and waits to be
 * signalled: lets tests check that an interrupted run leaves no process behind.
 */
import { startControlPlane } from './control-plane.js';

const controlPlane = await startControlPlane();
console.log(JSON.stringify(controlPlane.state));
setInterval(() => undefined, 60_000);
