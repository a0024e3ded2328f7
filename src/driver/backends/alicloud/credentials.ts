import { readFile } from 'node:fs/promises';
import path from 'node:path';
import credentials from '@alicloud/credentials';
import type { AlicloudConfig } from './config.js';

/**
 * Where ECS credentials come from. The values only ever travel from their source into the
 * SDK's signer: nothing here logs them or puts them in an error message.
 */

export type EcsCredential = InstanceType<typeof credentials.default>;

interface ProviderCredentials {
  accessKeyId: string;
  accessKeySecret: string;
  securityToken?: string;
  providerName: string;
}

/**
 * Access keys from a mounted Kubernetes Secret. The files are re-read once a minute, so a
 * rotated Secret takes effect without a restart.
 */
class SecretDirProvider {
  private cached?: { value: ProviderCredentials; readAt: number };

  constructor(
    private readonly dir: string,
    private readonly refreshMs = 60_000,
  ) {}

  getProviderName(): string {
    return 'secret_dir';
  }

  async getCredentials(): Promise<ProviderCredentials> {
    if (this.cached && Date.now() - this.cached.readAt < this.refreshMs) return this.cached.value;
    const read = async (name: string, optional = false): Promise<string | undefined> => {
      try {
        return (await readFile(path.join(this.dir, name), 'utf8')).trim();
      } catch (error) {
        if (optional && (error as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
        throw new Error(
          `cannot read ${name} from the credentials directory ${this.dir}: ${(error as NodeJS.ErrnoException).code ?? 'error'}`,
          { cause: error },
        );
      }
    };
    const accessKeyId = await read('access-key-id');
    const accessKeySecret = await read('access-key-secret');
    if (!accessKeyId || !accessKeySecret) {
      throw new Error(
        `the credentials directory ${this.dir} has an empty access-key-id or access-key-secret`,
      );
    }
    const securityToken = await read('security-token', true);
    const value = {
      accessKeyId,
      accessKeySecret,
      securityToken: securityToken || undefined,
      providerName: this.getProviderName(),
    };
    this.cached = { value, readAt: Date.now() };
    return value;
  }
}

export function credentialFor(
  config: AlicloudConfig['credentials'],
  env: NodeJS.ProcessEnv,
): EcsCredential {
  switch (config.source) {
    case 'default':
      // RRSA/OIDC, environment access keys, profiles, the ECS RAM role, a credentials URI.
      return new credentials.default();
    case 'env': {
      const securityToken = env.ALIBABA_CLOUD_SECURITY_TOKEN;
      return new credentials.default(
        new credentials.Config({
          type: securityToken ? 'sts' : 'access_key',
          accessKeyId: env.ALIBABA_CLOUD_ACCESS_KEY_ID,
          accessKeySecret: env.ALIBABA_CLOUD_ACCESS_KEY_SECRET,
          securityToken,
        }),
      );
    }
    case 'secret-dir':
      return new credentials.default(null, new SecretDirProvider(config.dir));
  }
}

/**
 * Resolves the credential once, so a start-up without usable credentials fails with the
 * sources that were tried rather than on the first CSI call.
 */
export async function checkCredential(
  credential: EcsCredential,
  source: string,
  timeoutMs: number,
): Promise<void> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`no answer within ${timeoutMs} ms`)), timeoutMs);
  });
  try {
    const resolved = await Promise.race([credential.getCredential(), timeout]);
    if (!resolved.accessKeyId || !resolved.accessKeySecret)
      throw new Error('the source returned an empty access key');
  } catch (error) {
    throw new Error(
      `no usable Alibaba Cloud credentials (--credentials=${source}): ${(error as Error).message}. ` +
        'Set ALIBABA_CLOUD_ACCESS_KEY_ID and ALIBABA_CLOUD_ACCESS_KEY_SECRET, mount a Secret with --credentials-dir, ' +
        'enable RRSA for the service account, or attach a RAM role to the node.',
      { cause: error },
    );
  } finally {
    clearTimeout(timer);
  }
}
