/** Polls until `check` holds (for asynchronous fakes); fails with the last observed state. */
export async function eventually(
  check: () => boolean | Promise<boolean>,
  describe: () => string = () => '',
  timeoutMs = 2_000,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline)
      throw new Error(`condition not met within ${timeoutMs} ms ${describe()}`);
    await new Promise((resolve) => setTimeout(resolve, 2));
  }
}
