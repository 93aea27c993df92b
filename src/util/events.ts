/**
 * A typed, synchronous event hub: how services tell each other what happened
 * without holding references to each other (no late binding). Listeners run
 * inline on emit, in the order they were added; they must not block or throw.
 */
export class Events<E extends object> {
  private readonly listeners = new Map<keyof E, Array<(value: never) => void>>()

  on<K extends keyof E> (event: K, listener: (value: E[K]) => void): void {
    const list = this.listeners.get(event) ?? []
    list.push(listener as (value: never) => void)
    this.listeners.set(event, list)
  }

  emit<K extends keyof E> (event: K, value: E[K]): void {
    for (const listener of this.listeners.get(event) ?? []) (listener as (value: E[K]) => void)(value)
  }
}
