/** The seed for this run: DM_TEST_SEED if set, else a fixed default; printed so a failure can be replayed. */
export function testSeed (): number {
  const seed = Number(process.env.DM_TEST_SEED ?? 20261130)
  process.stdout.write(`# seed ${seed} (set DM_TEST_SEED to replay)\n`)
  return seed
}
