#!/usr/bin/env node
/**
 * The snapback binary: one process image, several roles chosen by subcommand.
 */
import { nodeVersionProblem, packageVersion } from '../util/package.js';

interface Command {
  summary: string;
  run(args: string[]): Promise<number | void>;
}

/**
 * Each role's module is imported only when that role runs: the driver alone does not load the
 * Kubernetes client and the controllers, which keeps a node plugin's memory small.
 */
function lazy(summary: string, load: () => Promise<Pick<Command, 'run'>>): Command {
  return { summary, run: async (args) => (await load()).run(args) };
}

const commands: Record<string, Command> = {
  version: {
    summary: 'print the version',
    async run() {
      console.log(packageVersion());
    },
  },
  driver: lazy('run the CSI disk driver (backend local or alicloud)', async () => {
    return (await import('./driver.js')).driverCommand;
  }),
  registrar: lazy(
    "register the node plugin with kubelet (node-driver-registrar's job)",
    async () => {
      return (await import('./registrar.js')).registrarCommand;
    },
  ),
  controller: lazy(
    'run the controllers (and the embedded snapshot stack) against a cluster',
    async () => {
      return (await import('./controller.js')).controllerCommand;
    },
  ),
  'all-in-one': lazy('run the disk driver and every controller in one process', async () => {
    return (await import('./all-in-one.js')).allInOneCommand;
  }),
};

function usage(): string {
  const lines = Object.entries(commands).map(([name, c]) => `  ${name.padEnd(12)} ${c.summary}`);
  return ['usage: snapback <command> [flags]', '', 'commands:', ...lines].join('\n');
}

const [name, ...rest] = process.argv.slice(2);
if (!name || name === '--help' || name === '-h' || name === 'help') {
  console.log(usage());
  process.exit(name ? 0 : 2);
}
const command = commands[name];
if (!command) {
  console.error(`snapback: unknown command "${name}"\n${usage()}`);
  process.exit(2);
}
// snapback needs Node 22.19 (package.json engines; @kubernetes/client-node 2.x, which pods/exec
// loads, needs undici 8): on an older Node it would crash later with an error that names neither
const tooOld = nodeVersionProblem(process.versions.node);
if (tooOld && name !== 'version') {
  console.error(`snapback: ${tooOld}`);
  process.exit(1);
}
try {
  const code = await command.run(rest);
  // a failure (such as a lost lease) exits now: nothing left running may act any more
  if (typeof code === 'number' && code !== 0) process.exit(code);
  if (typeof code === 'number') process.exitCode = code;
} catch (error) {
  console.error(`snapback ${name}: ${(error as Error).message}`);
  process.exit(1);
}
