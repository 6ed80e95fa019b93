"""The `churn` command as a Python file for spark-submit, which runs .py files but not console scripts:
`spark-submit --master yarn deploy/spark/churn_submit.py score --config my-company.yaml --engine spark`."""

import sys

from churn_pipeline.cli import main

if __name__ == "__main__":
    sys.argv[0] = "churn"  # the name the help and error messages show
    main()
