from .feature_urls import patterns

urlpatterns = patterns(with_features=False)
