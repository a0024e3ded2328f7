import { expect } from 'chai';
import { execErrorMessage, exitCodeOf } from '../../../src/kube/exec.js';

describe('BackupPolicy hooks: reading pods/exec answers', function () {
  const exitCodes: Array<[string, Parameters<typeof exitCodeOf>[0], number | undefined]> = [
    ['Success is 0', { status: 'Success' }, 0],
    [
      'NonZeroExitCode carries its code',
      {
        status: 'Failure',
        reason: 'NonZeroExitCode',
        details: { causes: [{ reason: 'ExitCode', message: '3' }] },
      },
      3,
    ],
    [
      'a failure without an exit code (the command could not start) has none',
      { status: 'Failure', message: 'exec: "nope": executable file not found in $PATH' },
      undefined,
    ],
  ];
  for (const [name, status, code] of exitCodes) {
    it(name, function () {
      expect(exitCodeOf(status)).to.equal(code);
    });
  }

  const errors: Array<[string, unknown, RegExp]> = [
    [
      'a 403 names the permissions and the chart value',
      { message: 'Unexpected server response: 403' },
      /needs create and get on pods\/exec.*hooks\.enabled=true/,
    ],
    ['a 404 says the pod is gone', new Error('Unexpected server response: 404'), /no such pod/],
    ['anything else is passed on', { error: { message: 'ECONNRESET' } }, /^ECONNRESET$/],
  ];
  for (const [name, error, expected] of errors) {
    it(name, function () {
      expect(execErrorMessage(error)).to.match(expected);
    });
  }
});
