"""AutoML for tables (what SageMaker Autopilot does): ``ocula.automl(data, target=...)`` returns a run.

The job is ``ocula.tabular.job.automl``; its modules (pandas, scikit-learn, LightGBM) load when
it is first called, so ``import ocula`` stays light.
"""
