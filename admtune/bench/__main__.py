from admtune.bench.optimizers import main

raise SystemExit(main())
