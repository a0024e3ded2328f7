import winston from 'winston';

/**
 * One JSON line per event. Callers add `controller`, `namespace` and `name` with `child()`.
 * Errors are logged as `error: err.message` (winston would otherwise drop nested errors).
 */
export type Logger = winston.Logger;

export function createLogger(
  defaultMeta: Record<string, string> = {},
  level = process.env.SNAPBACK_LOG_LEVEL ?? 'info',
): Logger {
  return winston.createLogger({
    level,
    defaultMeta: { component: 'snapback', ...defaultMeta },
    format: winston.format.combine(
      winston.format.errors({ stack: false }),
      winston.format.timestamp(),
      winston.format.json(),
    ),
    transports: [
      new winston.transports.Console({ stderrLevels: ['error', 'warn', 'info', 'debug'] }),
    ],
  });
}

/** A logger that writes nothing, for tests and library defaults. */
export function silentLogger(): Logger {
  return winston.createLogger({ silent: true, transports: [new winston.transports.Console()] });
}

export function errorMessage(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}
