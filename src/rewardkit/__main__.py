from .cli import main

if __name__ == "__main__":  # vLLM (serve --engine vllm) may start processes that import __main__ again
    raise SystemExit(main())
