import type { z } from 'zod';

/** A zod error as `path: message` lines, with paths written as the API server writes them. */
export function describeIssues(error: z.ZodError): string {
  return error.issues
    .flatMap((issue) => {
      const path = issue.path
        .map((segment, index) =>
          typeof segment === 'number'
            ? `[${segment}]`
            : `${index === 0 ? '' : '.'}${String(segment)}`,
        )
        .join('');
      if (issue.code === 'unrecognized_keys') {
        return issue.keys.map((key) => `${path ? `${path}.` : ''}${key}: unknown field`);
      }
      return [`${path}: ${issue.message}`];
    })
    .join('\n');
}
