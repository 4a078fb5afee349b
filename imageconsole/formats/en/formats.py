# One date format everywhere in the console (list, detail, operation log, Excel): year first, 24 hours,
# so that dates sort as they read and mean the same in every language.
DATE_FORMAT = "Y-m-d"
SHORT_DATE_FORMAT = "Y-m-d"
DATETIME_FORMAT = "Y-m-d H:i"
SHORT_DATETIME_FORMAT = "Y-m-d H:i"
TIME_FORMAT = "H:i"
YEAR_MONTH_FORMAT_SHORT = "y-m"
