from antlm.cli import main

raise SystemExit(main())
