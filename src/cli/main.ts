#!/usr/bin/env node
/**
 * The snapback binary: one process image, several roles chosen by subcommand.
 */
import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

interface Command {
  summary: string;
  run(args: string[]): Promise<number | void>;
}

/** package.json sits above both src/cli (run by tsx) and dist/src/cli (compiled). */
const version = (): string => {
  let dir = path.dirname(fileURLToPath(import.meta.url));
  while (!existsSync(path.join(dir, 'package.json'))) dir = path.dirname(dir);
  const pkg = JSON.parse(readFileSync(path.join(dir, 'package.json'), 'utf8')) as {
    version: string;
  };
  return pkg.version;
};

const commands: Record<string, Command> = {
  version: {
    summary: 'print the version',
    async run() {
      console.log(version());
    },
  },
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
try {
  const code = await command.run(rest);
  if (typeof code === 'number') process.exitCode = code;
} catch (error) {
  console.error(`snapback ${name}: ${(error as Error).message}`);
  process.exit(1);
}
