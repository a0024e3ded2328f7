import type { KubeClient } from './client.js';
import { Secrets, type KubeObject } from './resource.js';

/**
 * A Secret's data, decoded from base64, as the CSI sidecars pass it to the driver; undefined
 * when the Secret does not exist. Other errors (a 403, the API server gone) are thrown.
 */
export async function readSecretData(
  client: KubeClient,
  name: string,
  namespace: string,
): Promise<Record<string, string> | undefined> {
  const secret = await client.get<KubeObject & { data?: Record<string, string> }>(
    Secrets,
    name,
    namespace,
  );
  if (!secret) return undefined;
  return Object.fromEntries(
    Object.entries(secret.data ?? {}).map(([key, value]) => [
      key,
      Buffer.from(value, 'base64').toString('utf8'),
    ]),
  );
}
