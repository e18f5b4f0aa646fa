from quantdoctor.cli import main

raise SystemExit(main())
