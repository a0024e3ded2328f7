import { expect } from 'chai';

import {
  isReadOnly,
  mountAt,
  parseMountinfo,
} from '../../../../../src/driver/backends/local/mounts.js';

const mountinfo = `22 1 253:0 / / rw,relatime shared:1 - ext4 /dev/vda rw
41 22 7:0 / /var/lib/kubelet/staging/pvc\\0401 rw,relatime shared:30 - ext4 /dev/loop0 rw
42 22 7:0 / /var/lib/kubelet/pods/x/volumes/pvc rw,relatime shared:30 - ext4 /dev/loop0 rw
43 42 7:0 / /var/lib/kubelet/pods/x/volumes/pvc ro,relatime shared:30 - ext4 /dev/loop0 rw
`;

describe('local backend: mount table', function () {
  const mounts = parseMountinfo(mountinfo);

  it('parses mount points, sources and options, undoing octal escapes', function () {
    expect(mounts).to.have.length(4);
    expect(mounts[1]).to.deep.include({
      mountPoint: '/var/lib/kubelet/staging/pvc 1',
      source: '/dev/loop0',
      fsType: 'ext4',
      root: '/',
    });
  });

  it('finds the topmost mount at a path and whether it is read-only', function () {
    const top = mountAt(mounts, '/var/lib/kubelet/pods/x/volumes/pvc');
    expect(top && isReadOnly(top)).to.equal(true);
    expect(mountAt(mounts, '/var/lib/kubelet')).to.equal(undefined);
  });
});
