// The data hook both consoles' pages use.
import { useCallback, useLayoutEffect, useRef, useState } from '../vendor/preact-hooks.js';

/** Loads `load()` on mount and whenever `deps` change: { data, error, loading, reload, setData }. */
export function useLoad(load, deps = []) {
  const [state, setState] = useState({ data: null, error: null, loading: true });
  const generation = useRef(0);
  const reload = useCallback(async () => {
    const mine = ++generation.current;
    setState((s) => ({ ...s, loading: true }));
    try {
      const data = await load();
      if (mine === generation.current) setState({ data, error: null, loading: false });
    } catch (error) {
      if (mine === generation.current) setState((s) => ({ data: s.data, error, loading: false }));
    }
  }, deps);
  // A layout effect starts the request right after the render: a plain effect waits for the next
  // animation frame, which a background tab delays by up to 100 ms.
  useLayoutEffect(() => {
    reload();
  }, [reload]);
  return { ...state, reload, setData: (data) => setState((s) => ({ ...s, data })) };
}
